#!/usr/bin/env bash
# Install what building and running the images needs, from Debian's packages: podman and
# buildah (with runc and netavark, and iptables, which Debian's netavark only suggests but
# needs to give a build's RUN steps a network), and mmdebstrap for the base image's stand-in.
# Idempotent: nothing is done when every tool is there. Needs root (or sudo).
set -euo pipefail
tools=(podman buildah runc mmdebstrap iptables)
packages=(podman buildah runc mmdebstrap iptables netavark aardvark-dns uidmap fuse-overlayfs slirp4netns)
missing=()
for tool in "${tools[@]}"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "container tools: present ($(podman --version))"
  exit 0
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "container tools: installing ${packages[*]} (missing: ${missing[*]})"
start=$(date +%s)
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
echo "container tools: installed in $(( $(date +%s) - start )) s ($(podman --version))"
