#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager and etcd from the Go modules pinned in
# hack/k8s/go.mod, version-stamped, into a per-version cache directory outside the checkout
# so that every clone on the machine (CI included) reuses them.
#
# Usage: hack/k8s/build.sh            # build if missing, print the binary directory
# Env:   KERNEL_CONTROLLER_CACHE      # cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/kernel-controller)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v[0-9]/ {print $2; exit}' "$here/go.mod")
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v[0-9]/ {print $2; exit}' "$here/go.mod")
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] || { echo "cannot read versions from $here/go.mod" >&2; exit 1; }

cache_root=${KERNEL_CONTROLLER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kernel-controller}
bin_dir="$cache_root/k8s-$k8s_version"

is_built() {
  [ -x "$bin_dir/kube-apiserver" ] && [ -x "$bin_dir/kube-controller-manager" ] && [ -x "$bin_dir/etcd" ] \
    && [ "$("$bin_dir/kube-apiserver" --version 2>/dev/null)" = "Kubernetes $k8s_version" ] \
    && "$bin_dir/etcd" --version 2>/dev/null | grep -q "etcd Version: ${etcd_version#v}"
}

if is_built; then
  echo "$bin_dir"
  exit 0
fi

mkdir -p "$cache_root"
# One builder at a time per machine; the others wait and then reuse its result.
exec 9>"$cache_root/.build-$k8s_version.lock"
flock 9
if is_built; then
  echo "$bin_dir"
  exit 0
fi

major=${k8s_version#v}; major=${major%%.*}
minor=${k8s_version#v*.}; minor=${minor%%.*}
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

staging=$(mktemp -d "$cache_root/.staging-XXXXXX")
trap 'rm -rf "$staging"' EXIT
echo "building Kubernetes $k8s_version and etcd $etcd_version into $bin_dir (a cold build takes 15-25 min)" >&2
start=$(date +%s)
(
  cd "$here"
  go build -trimpath -ldflags "$ldflags" -o "$staging/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
  go build -trimpath -ldflags "-s -w" -o "$staging/etcd" go.etcd.io/etcd/server/v3
)
rm -rf "$bin_dir"
mv "$staging" "$bin_dir"
trap - EXIT
echo "built in $(( $(date +%s) - start )) s" >&2
is_built || { echo "built binaries do not report $k8s_version / etcd $etcd_version" >&2; exit 1; }
echo "$bin_dir"
