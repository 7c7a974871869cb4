#!/usr/bin/env bash
# Build one of the project's images with podman from its Dockerfile, as shipped (the same file
# users build with `docker build`):
#   hack/image/build.sh controller [TAG]   Dockerfile, context .             (kernel-controller:latest)
#   hack/image/build.sh kernel [TAG]       kernel_launch/Dockerfile, context kernel_launch/ (kernel-py:dev)
# The base image comes from hack/image/base-image.sh. pip inside the build uses this machine's
# own package index configuration (`pip config list`: index, certificate, find-links), mounted
# into the build's RUN steps and never written into the repository or the image.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

what=${1:?usage: hack/image/build.sh controller|kernel [TAG]}
case $what in
  controller) file=Dockerfile; context=.; tag=${2:-kernel-controller:latest} ;;
  kernel) file=kernel_launch/Dockerfile; context=kernel_launch; tag=${2:-kernel-py:dev} ;;
  *) echo "unknown image $what: controller or kernel" >&2; exit 2 ;;
esac
command -v podman >/dev/null || { echo "podman is missing (apt-get install podman buildah)" >&2; exit 1; }

base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$file")
hack/image/base-image.sh "docker.io/library/$base"

# This machine's pip configuration, as one pip.conf for the build (values from the
# environment included), plus the files and directories it names.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mounts=(-v "$work/pip.conf:/etc/pip.conf:ro")
python3 - "$work/pip.conf" > "$work/paths" <<'PY'
import subprocess, sys
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                     text=True, check=False).stdout
settings = {}
for line in out.splitlines():
    name, _, value = line.partition("=")
    key = name.split(".", 1)[-1]
    if key:
        settings[key] = value.strip().strip("'\"")
with open(sys.argv[1], "w") as conf:
    conf.write("[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(settings.items())))
for key in ("cert", "client-cert", "find-links"):
    for value in settings.get(key, "").split():
        if value.startswith("/"):
            print(value)
PY
while read -r path; do
  [ -e "$path" ] && mounts+=(-v "$path:$path:ro")
done < "$work/paths"

limits=($(hack/image/ulimits.sh))
log=${KERNEL_CONTROLLER_CACHE:-$HOME/.cache/kernel-controller}/images/build-$what.log
mkdir -p "$(dirname "$log")"
start=$(date +%s)
if ! podman build "${limits[@]}" "${mounts[@]}" -f "$file" -t "$tag" "$context" >"$log" 2>&1; then
  tail -30 "$log" >&2
  echo "building $tag failed (whole log: $log)" >&2
  exit 1
fi
size=$(podman image inspect --format '{{.Size}}' "$tag" | numfmt --to=iec)
echo "built $tag from $file in $(( $(date +%s) - start )) s ($size; log: $log)"
