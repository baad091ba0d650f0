"""Module names of models registered by earlier pricewise versions in; the modules that hold those classes now out.

A logged model is a pickle that names the modules of its classes. Models registered before the package took its
current layout name ``pricewise.suggester`` and ``pricewise.features.*``; while one loads, those names resolve to
``pricewise.models.suggester`` and ``pricewise.models.features.*``, so an upgrade keeps serving the champion.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

# Old prefix -> new prefix; a name under an old prefix maps to the same name under the new one.
RENAMED = {
    "pricewise.suggester": "pricewise.models.suggester",
    "pricewise.features": "pricewise.models.features",
}


def current_name(name: str) -> str | None:
    """Where a module an old model names lives now, or None when the name did not move."""
    for old, new in RENAMED.items():
        if name == old or name.startswith(old + "."):
            return new + name.removeprefix(old)
    return None


class _OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module name to the module that has its contents now (the same module object)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if current_name(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(str(current_name(spec.name)))

    def exec_module(self, module: ModuleType) -> None:
        """The module is already executed under its current name."""


@contextmanager
def old_module_names() -> Iterator[None]:
    """While the block runs, old module names import as their current modules; afterwards they are gone again."""
    finder = _OldNames()
    before = set(sys.modules)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in set(sys.modules) - before:
            if current_name(name) is not None:
                del sys.modules[name]
