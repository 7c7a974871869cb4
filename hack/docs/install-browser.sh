#!/usr/bin/env bash
# Install Debian's Chromium for the docs site test (tests/integration/docs/test_site.py opens
# the built site in it, headless). Idempotent; needs root (or sudo).
set -euo pipefail
if command -v chromium >/dev/null; then
  echo "browser: present ($(chromium --version 2>/dev/null))"
  exit 0
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
start=$(date +%s)
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
echo "browser: installed in $(( $(date +%s) - start )) s ($(chromium --version 2>/dev/null))"
