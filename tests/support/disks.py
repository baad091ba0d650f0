"""A real small disk (a tmpfs mounted for the test) and a way to fill it, for tests of what a full disk does."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILL_CHUNK = 1 << 16


@contextmanager
def small_disk(mount_point: Path, size: str = "16m") -> Iterator[Path]:
    """Mount a tmpfs of `size` at `mount_point` for the block; skip the test where mounting is not allowed.

    Yields:
        The mount point, an empty file system of its own.
    """
    mount_point.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"a full disk is simulated with a small tmpfs, and mounting one needs root here ({exc})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True, timeout=30)


@contextmanager
def filled(disk: Path, leave_bytes: int = 0) -> Iterator[None]:
    """Fill a file system until writing fails with ENOSPC, then give back `leave_bytes`; empty it on exit."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        while True:
            try:
                handle.write(b"\0" * FILL_CHUNK)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave_bytes))
    try:
        yield
    finally:
        filler.unlink()
