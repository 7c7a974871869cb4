"""Namespaces known to be terminating, learnt from the API server's refusals.

Once a namespace is being deleted, the API server refuses every create in it with ``403`` and
the status cause ``NamespaceTerminating``, and its Kernels are about to be deleted with it (since
Kubernetes 1.33 the namespace controller deletes the Pods first, so a Kernel can outlive its Pod
there). Retrying such a create cannot succeed: as Kubernetes' own workload controllers do
(the ReplicaSet controller ignores ``NamespaceTerminatingCause``), the controller makes no
retry, records no Event and writes no status for it. Learning it from the first refusal, the
other Kernels of that namespace are not even tried: a deleted namespace with hundreds of
Kernels costs about one refused request (one per worker at most), not a storm.

The controller does not watch Namespaces (its RBAC has no rule for them), so the memory is
cleared by what the Kernel cache shows: a terminating namespace cannot receive new Kernels,
so once the cache holds no Kernel of it any more, its deletion is over (or its Kernels are
gone) and the name may be reused by a new namespace.

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

    def forget(self, namespace: str) -> None:
        """Forget ``namespace`` (its last Kernel left the cache)."""
        with self._lock:
            if namespace not in self._namespaces:
                return
            self._namespaces.discard(namespace)
        log.info("namespace %s has no Kernel left: forgotten as terminating", namespace)

    def __len__(self) -> int:
        with self._lock:
            return len(self._namespaces)
