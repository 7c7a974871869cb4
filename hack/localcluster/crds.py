"""Install CustomResourceDefinitions from YAML files and wait until they are Established.

Used before kube-controller-manager starts, so that its garbage collector and namespace
controller know the custom resources from their first discovery (it re-reads discovery only
every 30 s). An existing CRD is replaced by the file's version (server-side apply).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from informers import (
    APPLY_PATCH,
    Resource,
    ResourceClient,
    RestClient,
    close_api_client,
    new_api_client,
)

CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
ESTABLISHED_TIMEOUT_SECONDS = 60.0
FIELD_MANAGER = "localcluster"


def install_crds(kubeconfig: Path, paths: Sequence[Path]) -> list[str]:
    """Apply every CRD in ``paths``; return their names once all are Established."""
    api = new_api_client(str(kubeconfig))
    try:
        crds = ResourceClient(RestClient(api, user_agent="localcluster/install-crds"), CRDS)
        names = []
        for path in paths:
            body = yaml.safe_load(path.read_text())
            name = body["metadata"]["name"]
            crds.patch(
                name,
                json.dumps(body).encode(),
                content_type=APPLY_PATCH,
                field_manager=FIELD_MANAGER,
                force=True,
            )
            names.append(name)
        deadline = time.monotonic() + ESTABLISHED_TIMEOUT_SECONDS
        for name in names:
            while not _established(crds, name):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"CRD {name} not Established")
                time.sleep(0.1)  # bounded poll of the API server
        return names
    finally:
        close_api_client(api)


def _established(crds: ResourceClient, name: str) -> bool:
    conditions = (crds.get(name).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
