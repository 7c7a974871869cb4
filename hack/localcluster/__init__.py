"""A real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager)
for the tests and local runs of this project. A development tool, not part of the product."""

from localcluster.controlplane import (
    APISERVER,
    CONTROLLER_MANAGER,
    ETCD,
    ControlPlane,
    ControlPlaneError,
    default_bin_dir,
)
from localcluster.crds import install_crds
from localcluster.ports import free_port, free_ports

__all__ = [
    "APISERVER",
    "CONTROLLER_MANAGER",
    "ETCD",
    "ControlPlane",
    "ControlPlaneError",
    "default_bin_dir",
    "free_port",
    "free_ports",
    "install_crds",
]
