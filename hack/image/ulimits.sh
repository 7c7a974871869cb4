#!/usr/bin/env bash
# Prints the --ulimit options for podman build/run on this machine. Podman's defaults ask for
# more open files and processes than some machines grant (runc then fails with "error setting
# rlimits ... operation not permitted"): containers get at most 1,048,576 open files and 4,096
# processes, and less where this shell's hard limits are lower (processes: half of it, as the
# machine's own value itself was refused where we tried).
set -euo pipefail
files=$(ulimit -Hn)
procs=$(ulimit -Hu)
[ "$files" = unlimited ] || [ "$files" -gt 1048576 ] && files=1048576
if [ "$procs" = unlimited ] || [ "$procs" -gt 8192 ]; then procs=4096; else procs=$(( procs / 2 )); fi
echo "--ulimit nofile=$files:$files --ulimit nproc=$procs:$procs"
