#!/usr/bin/env bash
# A Debian bookworm base image with Python 3.11 (a stand-in for python:3.11-slim), made from Debian packages with
# debootstrap and `docker import`, for machines that reach Debian's mirror but no image registry.
#   docker/make-base-image.sh [TAG]     (default pricewise-base:bookworm; nothing is done when TAG exists)
# Needs root and debootstrap. Build the images on it with --build-arg BASE_IMAGE=TAG.
set -euo pipefail

tag="${1:-pricewise-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
docker="${DOCKER:-docker}"

if "$docker" image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag exists"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 2; }

root="$(mktemp -d /tmp/pricewise-rootfs.XXXXXX)"
chmod 755 "$root"  # it becomes the image's /, which every user must be able to enter
trap 'rm -rf "$root"' EXIT

start=$SECONDS
# python3-venv brings ensurepip, so the image builds a virtualenv with pip as python:3.11-slim would;
# ca-certificates lets the services reach HTTPS endpoints (a tracking server, the package index).
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror"

# Package caches and documentation are dead weight in every layer built on top (vfs copies each layer whole).
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log
# python:3.11-slim's names for the interpreter, so Dockerfiles and health checks work on either base.
ln -sf python3 "$root"/usr/bin/python

tar -C "$root" --numeric-owner -c . | "$docker" import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  - "$tag" >/dev/null
echo "base image $tag built in $((SECONDS - start)) s ($("$docker" image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
