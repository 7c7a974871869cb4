#!/usr/bin/env bash
# Copy the kernel launch scripts from kernel_launch/ into config/kernel-launch/, where the
# kustomize configMapGenerator of kernel-launch-scripts can read them (kustomize refuses
# files outside a kustomization's directory). `make kernel-launch-config` runs it;
# tests/integration/deploy fails while the copies differ from kernel_launch/.
set -euo pipefail
cd "$(dirname "$0")/.."

files=(bootstrap-kernel.sh launch_ipykernel.py)
for f in "${files[@]}"; do
  if [[ ! -f "kernel_launch/$f" ]]; then
    echo "sync-kernel-launch: kernel_launch/$f is missing" >&2
    exit 1
  fi
done
for f in "${files[@]}"; do
  cp "kernel_launch/$f" "config/kernel-launch/$f"
  echo "config/kernel-launch/$f <- kernel_launch/$f"
done
