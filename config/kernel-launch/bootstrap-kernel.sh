#!/bin/sh
# bootstrap-kernel.sh - start the kernel of a kernel Pod (or of a local node process).
#
# Contract:
#   KERNEL_LANGUAGE  python (default), r or scala (case-insensitive); anything else: exit 1.
#   KERNEL_WORKING_DIR  when set, the kernel starts in that directory (as Enterprise Gateway's
#     launchers do); one that cannot be entered: exit 1.
#   python: runs launch_ipykernel.py with the interpreter $KERNEL_PYTHON, else python3, else
#     python; the launcher is $KERNEL_LAUNCHER if set, else
#     $KERNEL_LAUNCHERS_DIR/python/scripts/launch_ipykernel.py if it exists (default dir
#     /usr/local/bin/kernel-launchers), else launch_ipykernel.py next to this script.
#     The launcher reads KERNEL_ID, KERNEL_KEY, KERNEL_IP, KERNEL_*_PORT and KERNEL_IDLE_TIMEOUT
#     from the environment itself (the kernel id is not put on the command line: it may be the
#     signing key). This script adds the Enterprise Gateway options from PORT_RANGE,
#     RESPONSE_ADDRESS, PUBLIC_KEY (or their EG_ spellings), KERNEL_SPARK_CONTEXT_INIT_MODE and
#     KERNEL_CLASS_NAME when they are set, then its own arguments ("$@").
#   r / scala: the Enterprise Gateway launchers under $KERNEL_LAUNCHERS_DIR (R/scripts/
#     launch_IRkernel.R; scala/lib/toree-launcher*.jar with toree-assembly-*.jar and
#     $SPARK_HOME/bin/spark-submit); a missing one: a message and exit 1.
#   Exit code: the launcher runs with exec, so its exit code (0 idle/shutdown, non-zero crash)
#     and signals reach whoever started this script unchanged, and the kernel is PID 1 in a
#     container. Exits 1 itself only when it cannot start a launcher.
#   Never traces commands (no set -x) and never prints the environment or the key.
set -eu

KERNEL_LAUNCHERS_DIR="${KERNEL_LAUNCHERS_DIR:-/usr/local/bin/kernel-launchers}"
PORT_RANGE="${PORT_RANGE:-${EG_PORT_RANGE:-}}"
RESPONSE_ADDRESS="${RESPONSE_ADDRESS:-${EG_RESPONSE_ADDRESS:-}}"
PUBLIC_KEY="${PUBLIC_KEY:-${EG_PUBLIC_KEY:-}}"
KERNEL_SPARK_CONTEXT_INIT_MODE="${KERNEL_SPARK_CONTEXT_INIT_MODE:-none}"
KERNEL_CLASS_NAME="${KERNEL_CLASS_NAME:-}"

fail() {
    echo "bootstrap-kernel.sh: $*" >&2
    exit 1
}

script_dir() {
    case "$0" in
        */*) CDPATH='' cd -- "${0%/*}" && pwd ;;
        *) pwd ;;
    esac
}

python_interpreter() {
    if [ -n "${KERNEL_PYTHON:-}" ]; then
        echo "$KERNEL_PYTHON"
    elif command -v python3 >/dev/null 2>&1; then
        echo python3
    elif command -v python >/dev/null 2>&1; then
        echo python
    else
        fail "no Python interpreter found (set KERNEL_PYTHON, or install python3)"
    fi
}

python_launcher() {
    if [ -n "${KERNEL_LAUNCHER:-}" ]; then
        echo "$KERNEL_LAUNCHER"
    elif [ -f "$KERNEL_LAUNCHERS_DIR/python/scripts/launch_ipykernel.py" ]; then
        echo "$KERNEL_LAUNCHERS_DIR/python/scripts/launch_ipykernel.py"
    else
        echo "$here/launch_ipykernel.py"
    fi
}

launch_python_kernel() {
    python=$(python_interpreter)
    launcher=$(python_launcher)
    [ -f "$launcher" ] || fail "Python launcher '$launcher' is missing"
    # Options first, then this script's arguments: set -- rebuilds "$@" without word splitting.
    [ -z "$KERNEL_CLASS_NAME" ] || set -- --kernel-class-name "$KERNEL_CLASS_NAME" "$@"
    set -- --spark-context-initialization-mode "$KERNEL_SPARK_CONTEXT_INIT_MODE" "$@"
    [ -z "$PUBLIC_KEY" ] || set -- --public-key "$PUBLIC_KEY" "$@"
    [ -z "$RESPONSE_ADDRESS" ] || set -- --response-address "$RESPONSE_ADDRESS" "$@"
    [ -z "$PORT_RANGE" ] || set -- --port-range "$PORT_RANGE" "$@"
    echo "bootstrap-kernel.sh: starting the python kernel: $python $launcher" >&2
    exec "$python" "$launcher" "$@"
}

launch_r_kernel() {
    launcher="$KERNEL_LAUNCHERS_DIR/R/scripts/launch_IRkernel.R"
    [ -f "$launcher" ] || fail "R launcher '$launcher' is missing (use an image with IRkernel)"
    command -v Rscript >/dev/null 2>&1 || fail "Rscript is not installed"
    echo "bootstrap-kernel.sh: starting the R kernel: Rscript $launcher" >&2
    exec Rscript "$launcher" --kernel-id "${KERNEL_ID:-}" --port-range "${PORT_RANGE:-0..0}" \
        --response-address "$RESPONSE_ADDRESS" --public-key "$PUBLIC_KEY" \
        --spark-context-initialization-mode "$KERNEL_SPARK_CONTEXT_INIT_MODE" "$@"
}

launch_scala_kernel() {
    lib="$KERNEL_LAUNCHERS_DIR/scala/lib"
    assembly=$(ls -1 "$lib"/toree-assembly-*.jar 2>/dev/null | head -n 1) || true
    [ -n "$assembly" ] || fail "Toree assembly '$lib/toree-assembly-*.jar' is missing"
    launcher=$(ls -1 "$lib"/toree-launcher*.jar 2>/dev/null | head -n 1) || true
    [ -n "$launcher" ] || fail "Scala launcher jar '$lib/toree-launcher*.jar' is missing"
    [ -n "${SPARK_HOME:-}" ] && [ -x "$SPARK_HOME/bin/spark-submit" ] \
        || fail "spark-submit not found: set SPARK_HOME"
    echo "bootstrap-kernel.sh: starting the Scala kernel: spark-submit $launcher" >&2
    exec "$SPARK_HOME/bin/spark-submit" --name "${KERNEL_USERNAME:-kernel}-${KERNEL_ID:-}" \
        --jars "$assembly" --class launcher.ToreeLauncher "$launcher" \
        --alternate-sigint USR2 \
        --kernel-id "${KERNEL_ID:-}" --port-range "${PORT_RANGE:-0..0}" \
        --response-address "$RESPONSE_ADDRESS" --public-key "$PUBLIC_KEY" \
        --spark-context-initialization-mode "$KERNEL_SPARK_CONTEXT_INIT_MODE" "$@"
}

here=$(script_dir)  # before a change of directory: $0 may be relative
if [ -n "${KERNEL_WORKING_DIR:-}" ]; then
    CDPATH='' cd -- "$KERNEL_WORKING_DIR" 2>/dev/null \
        || fail "cannot enter KERNEL_WORKING_DIR '$KERNEL_WORKING_DIR'"
fi

language="${KERNEL_LANGUAGE:-python}"
case "$language" in
    [Pp][Yy][Tt][Hh][Oo][Nn]) launch_python_kernel "$@" ;;
    [Rr]) launch_r_kernel "$@" ;;
    [Ss][Cc][Aa][Ll][Aa]) launch_scala_kernel "$@" ;;
    *) fail "unrecognized KERNEL_LANGUAGE '$language' (expected python, r or scala)" ;;
esac
