#!/usr/bin/env bash
# The base image the Dockerfiles name (ARG PYTHON_IMAGE, default python:3.11-slim), in podman's
# storage: kept when present, pulled when a registry answers, else a local stand-in made from
# Debian's packages with mmdebstrap and tagged with the official name. The stand-in has what
# the Dockerfiles use of the official image: Python 3.11 with venv and pip, CA certificates,
# `python` on the PATH, LANG=C.UTF-8. Its root filesystem is cached as a tarball outside the
# checkout (like the control plane binaries), keyed by what goes into it.
#
# Usage: hack/image/base-image.sh [IMAGE]      (default docker.io/library/python:3.11-slim)
set -euo pipefail

image=${1:-docker.io/library/python:3.11-slim}
cache=${KERNEL_CONTROLLER_CACHE:-$HOME/.cache/kernel-controller}/images
suite=bookworm  # Debian 12: Python 3.11, as the official python:3.11-slim is built on
packages=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
key=$(printf '%s\n' "stand-in v1" "$suite" "$packages" | sha256sum | cut -c1-12)
tarball=$cache/python-3.11-slim-$suite-$key.tar

if podman image exists "$image"; then
  echo "base image $image: present"
  exit 0
fi
if timeout 120 podman pull --quiet "$image" >/dev/null 2>&1; then
  echo "base image $image: pulled"
  exit 0
fi
if [ ! -s "$tarball" ]; then
  command -v mmdebstrap >/dev/null || {
    echo "cannot pull $image and mmdebstrap is missing (apt-get install mmdebstrap)" >&2
    exit 1
  }
  echo "base image $image: no registry answers; making a stand-in from Debian $suite packages"
  mkdir -p "$cache"
  start=$(date +%s)
  # Docs, man pages and translations are left out, as in the official slim images.
  mmdebstrap --quiet --format=tar --variant=minbase --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$suite" "$tarball.partial"
  mv "$tarball.partial" "$tarball"
  echo "  root filesystem in $((  $(date +%s) - start )) s: $tarball ($(du -h "$tarball" | cut -f1))"
else
  echo "base image $image: importing the cached stand-in $tarball"
fi
podman import --quiet \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  "$tarball" "$image" >/dev/null
echo "base image $image: stand-in imported ($(podman image inspect --format '{{.Size}}' "$image" | numfmt --to=iec) )"
