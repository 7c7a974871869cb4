"""Where the API server is and how to authenticate: a kubeconfig file or the in-cluster
service account.

Precedence: an explicit kubeconfig path; else the in-cluster configuration when running in a
Pod; else ``$KUBECONFIG`` or ``~/.kube/config``. The ``kubernetes`` package's loaders are
untyped; this module is the one typed door to them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration

_load_kube_config: Callable[..., None] = kube_config.load_kube_config
_load_incluster_config: Callable[..., None] = kube_config.load_incluster_config


def load_configuration(kubeconfig: str | None = None, *, context: str | None = None) -> Any:
    """A ``kubernetes.client.Configuration`` for the chosen cluster."""
    configuration = Configuration()
    if kubeconfig:
        _load_kube_config(
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        _load_incluster_config(client_configuration=configuration)
    else:
        _load_kube_config(context=context, client_configuration=configuration)
    return configuration


def new_api_client(
    kubeconfig: str | None = None, *, context: str | None = None, pool_size: int | None = None
) -> ApiClient:
    """An ``ApiClient`` (connection pool + credentials) for the chosen cluster.

    ``pool_size`` is the most connections kept open to the API server; give at least the
    number of threads that make requests at once (every open watch holds one), or urllib3
    discards connections and each request pays a new TLS handshake.
    """
    configuration = load_configuration(kubeconfig, context=context)
    if pool_size is not None:
        configuration.connection_pool_maxsize = pool_size
    return ApiClient(configuration=configuration)


def close_api_client(api_client: ApiClient) -> None:
    """Close the client's connection pool (typed wrapper of ``ApiClient.close``)."""
    close: Callable[[], None] = api_client.close
    close()
