"""A local node for development: a minimal kubelet that runs kernel Pods as local processes.

Not part of the controller. ``PYTHONPATH=src:hack python -m localnode --kubeconfig PATH``
(``make node-up`` / ``make node-down`` against the local control plane). It:

- registers a ``Node`` (default ``local-node``) and keeps its ``Ready`` heartbeat
  (:mod:`localnode.nodeobj`);
- binds every unbound Pod labelled ``jupyter.org/kernel-name`` to itself (``pods/binding``)
  and takes the labelled Pods bound to it; other Pods are never touched;
- gives each Pod its own loopback address (127.0.0.2 … 127.0.255.254, :mod:`localnode.ipam`),
  kept for the life of the Pod and freed when it is deleted;
- runs ``bash kernel_launch/bootstrap-kernel.sh`` per Pod with the Pod's environment plus
  ``KERNEL_IP`` and ``KERNEL_PYTHON`` (:mod:`localnode.podspec`), in its own session, output to
  ``<state-dir>/pods/<namespace>/<name>-<uid8>/container.log`` (:mod:`localnode.processes`);
- reports the Pod status as it is (:mod:`localnode.podstatus`, :mod:`localnode.sync`):
  Running with the IP, Ready once the readiness probe's port accepts a connection,
  Succeeded/Failed with the real exit code;
- stops the process when the Pod is deleted and finishes the deletion as a kubelet does;
- with ``--no-processes``, only writes status: Running + Ready at once, with an IP.

Limits: only ``containers[0]`` runs (image, command and args ignored); a Pod is never
restarted, whatever its ``restartPolicy``; readiness is a TCP connect, not re-probed once
Ready. Threads and shutdown: :mod:`localnode.kubelet`. Linux only (any 127/8 address is
loopback).
"""
