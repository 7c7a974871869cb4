"""Connect to a Kernel's IPython kernel with ``jupyter_client`` and run code, using only what
the Kernel publishes: the ``jupyter.org/kernel-connection-info`` annotation (and, in
secret-key mode, the Secret named in ``status.connection.keySecret``).

Outside the cluster the Service name does not resolve, so ``--host pod`` (the default) uses
the Pod IP from ``status.podIP`` instead of the annotation's ``ip``.

Usage: python hack/kernel_connect.py --kubeconfig PATH --namespace NS --name NAME [--code '1+1']
Prints the result of the code (the ``text/plain`` of the execute result, or its stdout).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from typing import Any, cast

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.connect import KernelConnectionInfo

from informers import Resource, ResourceClient, RestClient, close_api_client, new_api_client

KERNELS = Resource("jupyter.org", "v1", "kernels")
SECRETS = Resource("", "v1", "secrets")
CONNECTION_INFO = "jupyter.org/kernel-connection-info"


def connection_info(kernel: dict[str, Any], *, host: str, key: str | None) -> dict[str, Any]:
    """The jupyter_client connection dict for ``kernel`` (pure)."""
    info: dict[str, Any] = json.loads(kernel["metadata"]["annotations"][CONNECTION_INFO])
    if host == "pod":
        info["ip"] = kernel["status"]["podIP"]
    elif host != "annotation":
        info["ip"] = host
    if key is not None:
        info["key"] = key
    info.pop("kernel_name", None)
    return info


def run_code(info: dict[str, Any], code: str, *, timeout: float) -> str:
    """Execute ``code`` on the kernel and return its text result."""
    client = BlockingKernelClient()
    client.load_connection_info(cast(KernelConnectionInfo, info))
    client.start_channels()
    try:
        client.wait_for_ready(timeout=timeout)
        outputs: list[str] = []

        def collect(msg: dict[str, Any]) -> None:
            content = msg["content"]
            if msg["msg_type"] == "execute_result":
                outputs.append(content["data"].get("text/plain", ""))
            elif msg["msg_type"] == "stream":
                outputs.append(content["text"].rstrip("\n"))
            elif msg["msg_type"] == "error":
                outputs.append(f"{content['ename']}: {content['evalue']}")

        reply = client.execute_interactive(code, timeout=timeout, output_hook=collect)
        if reply["content"]["status"] != "ok" and not outputs:
            outputs.append(f"execution failed: {reply['content'].get('ename', 'error')}")
        return "\n".join(outputs)
    finally:
        client.stop_channels()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="default: in-cluster, else ~/.kube/config")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--name", required=True, help="the Kernel's name")
    parser.add_argument("--code", default="1+1")
    parser.add_argument("--host", default="pod", help="pod (default), annotation, or an address")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)

    api = new_api_client(args.kubeconfig)
    try:
        rest = RestClient(api)
        kernel = ResourceClient(rest, KERNELS, namespace=args.namespace).get(args.name)
        key = None
        secret_name = ((kernel.get("status") or {}).get("connection") or {}).get("keySecret")
        if secret_name:
            secret = ResourceClient(rest, SECRETS, namespace=args.namespace).get(secret_name)
            key = base64.b64decode(secret["data"]["key"]).decode()
        info = connection_info(kernel, host=args.host, key=key)
    finally:
        close_api_client(api)
    print(run_code(info, args.code, timeout=args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
