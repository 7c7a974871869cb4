#!/usr/bin/env bash
# `make run`: run the controller.
#  - With $KUBECONFIG set: install the CRD into that cluster and run the controller in the
#    foreground against it (Ctrl-C stops it).
#  - Otherwise, on this machine: the local control plane and local node (started by the
#    Makefile's prerequisites), the controller in the background, the sample Kernel, the
#    sample KernelPool and a Kernel that takes its kernel from the pool; then print the
#    commands that talk to the two kernels. `make down` stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=.venv/bin
samples=config/samples
state=.cluster
controller_pid=$state/controller.pid
controller_log=$state/controller.log

stop_controller() {
  local pid
  pid=$(cat "$controller_pid" 2>/dev/null) || return 0
  if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "kernel-controller"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$controller_pid"
}

if [ "${1:-}" = "--down" ]; then
  stop_controller
  make --no-print-directory node-down
  make --no-print-directory cluster-down
  exit 0
fi

if [ -n "${KUBECONFIG:-}" ] && [ "${KERNEL_CONTROLLER_LOCAL:-}" != "1" ]; then
  echo "using the cluster of KUBECONFIG=$KUBECONFIG"
  $venv/kubectl apply --server-side -k config/crd
  exec $venv/kernel-controller --kubeconfig "$KUBECONFIG" --log-format text
fi

make --no-print-directory node-up  # builds and starts the local control plane first
kubeconfig=$PWD/$state/kubeconfig
kubectl() { $venv/kubectl --kubeconfig "$kubeconfig" "$@"; }

running() {
  local pid
  pid=$(cat "$controller_pid" 2>/dev/null) || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "kernel-controller"
}

if running; then
  echo "kernel-controller already running (pid $(cat "$controller_pid"))"
else
  setsid $venv/kernel-controller --kubeconfig "$kubeconfig" --log-format text \
    --metrics-addr 127.0.0.1:8080 --probe-addr 127.0.0.1:8081 \
    >>"$controller_log" 2>&1 < /dev/null &
  echo $! > "$controller_pid"
  echo "kernel-controller started (pid $!, log $controller_log)"
fi
for _ in $(seq 1 120); do
  if $venv/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8081/readyz', timeout=2)" 2>/dev/null; then break; fi
  running || { echo "kernel-controller exited; see $controller_log" >&2; tail -20 "$controller_log" >&2; exit 1; }
  sleep 0.5
done

name_of() { $venv/python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["metadata"]["name"])' "$1"; }
# A sample left by an earlier run lost its kernel process with that run's local node (it is
# KernelFailed, or its Pod is gone with the node): start it afresh.
fresh() {
  local name=$1 reason
  reason=$(kubectl get -n default "kernel/$name" --ignore-not-found \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}')
  if [ -n "$reason" ] && [ "$reason" != "KernelReady" ]; then
    echo "the sample Kernel $name from an earlier run is $reason: creating it again"
    kubectl delete -n default "kernel/$name" --wait=true
  fi
}
name=$(name_of $samples/kernel-sample.yaml)
pool=$(name_of $samples/kernelpool-sample.yaml)
pooled=$(name_of $samples/kernel-pooled-sample.yaml)
fresh "$name"
fresh "$pooled"
kubectl apply -n default -f $samples/kernel-sample.yaml -f $samples/kernelpool-sample.yaml
echo "waiting for Kernel $name and KernelPool $pool to be Ready (local node: $PWD/.localnode/node.log)"
kubectl wait -n default --for=condition=Ready "kernel/$name" "kernelpool/$pool" --timeout=180s
kubectl apply -n default -f $samples/kernel-pooled-sample.yaml
kubectl wait -n default --for=condition=Ready "kernel/$pooled" --timeout=60s
kubectl get kernelpools -n default
kubectl get kernels -n default -o wide
echo
echo "connect to the sample kernels and run code with:"
for kernel in "$name" "$pooled"; do
  echo "PYTHONPATH=hack $venv/python hack/kernel_connect.py --kubeconfig $kubeconfig --namespace default --name $kernel --code 'print(1+1)'"
done
