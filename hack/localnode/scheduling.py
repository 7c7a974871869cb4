"""Whether a Pod may be bound to the local node, as the scheduler would decide. Pure.

The local node also plays the scheduler for its one node: it binds a kernel Pod unless the
Pod's ``spec.nodeSelector`` asks for a label the node does not have, in which case the Pod is
left unbound and marked as the scheduler marks it (``PodScheduled`` False, reason
``Unschedulable``, the scheduler's message). Affinity, taints and resources are not
considered (the node has room for everything).
"""

from __future__ import annotations

from collections.abc import Mapping

from localnode.podspec import Pod


def unschedulable(pod: Pod, node_labels: Mapping[str, str]) -> str | None:
    """The scheduler's message when ``pod`` does not fit the node, else None."""
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if all(node_labels.get(k) == v for k, v in selector.items()):
        return None
    return (
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
