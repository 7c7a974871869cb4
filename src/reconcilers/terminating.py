"""Namespaces known to be terminating, learnt from the API server's refusals.

Once a namespace is being deleted, the API server refuses every create in it with ``403`` and
the status cause ``NamespaceTerminating``, and its Kernels are about to be deleted with it (since
Kubernetes 1.33 the namespace controller deletes the Pods first, so a Kernel can outlive its Pod
there). Retrying such a create cannot succeed: as Kubernetes' own workload controllers do
(the ReplicaSet controller ignores ``NamespaceTerminatingCause``), the controller makes no
retry, records no Event and writes no status for it. Learning it from the first refusal, the
other Kernels of that namespace are not even tried: a deleted namespace with hundreds of
Kernels costs about one refused request (one per worker at most), not a storm.

A controller that serves every namespace also watches Namespaces and marks one as soon as it
is being deleted, before the namespace controller deletes its Pods (so not even a status is
written for its Kernels); a namespace-scoped controller cannot watch them (a Role cannot
grant a cluster-scoped resource) and learns from the first refusal. Forgotten when the
Namespace is gone, or when the Kernel cache holds no Kernel of it any more: a terminating
namespace cannot receive new Kernels, so its deletion is then over (or its Kernels are gone)
and the name may be reused by a new namespace.

Thread-safe: one lock; called from worker and informer handler threads.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class TerminatingNamespaces:
    """The set of namespaces in which creates are known to be refused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._namespaces: set[str] = set()  # guarded by _lock

    def mark(self, namespace: str) -> bool:
        """Record that ``namespace`` is terminating; True if it was not known yet."""
        with self._lock:
            if namespace in self._namespaces:
                return False
            self._namespaces.add(namespace)
        log.info(
            "namespace %s is being deleted: no more children are created for its Kernels",
            namespace,
        )
        return True

    def __contains__(self, namespace: object) -> bool:
        with self._lock:
            return namespace in self._namespaces

    def forget(self, namespace: str, *, why: str) -> None:
        """Forget ``namespace`` (it is gone, or its last Kernel left the cache: ``why``)."""
        with self._lock:
            if namespace not in self._namespaces:
                return
            self._namespaces.discard(namespace)
        log.info("namespace %s forgotten as terminating: %s", namespace, why)

    def __len__(self) -> int:
        with self._lock:
            return len(self._namespaces)
