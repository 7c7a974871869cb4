"""Spans of a reconcile reach an OTLP/HTTP receiver, with child spans per API request, and the
trace id is in the log line of that reconcile."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from controllerprocess import ControllerProcess
from eventually import eventually
from kerneltest import Clients, kernel_body


class Receiver(ThreadingHTTPServer):
    """A minimal OTLP/HTTP (protobuf) trace receiver on loopback."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.spans: list[dict[str, Any]] = []  # guarded by lock

    def collected(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.spans)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attrs = {}
                    for kv in span.attributes:
                        value = kv.value
                        attrs[kv.key] = (
                            value.string_value
                            if value.HasField("string_value")
                            else value.int_value
                        )
                    spans.append(
                        {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "attributes": attrs,
                        }
                    )
        with self.server.lock:
            self.server.spans.extend(spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver")
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_reconcile_spans_with_api_children_and_trace_id_in_logs(
    spawn: Callable[..., ControllerProcess], clients: Clients, receiver: Receiver
) -> None:
    ns = clients.namespace
    port = receiver.server_address[1]
    proc = spawn(
        f"--namespaces={ns}",
        "--log-level=debug",
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_SERVICE_NAME": "kernel-controller-test",
        },
    )
    proc.wait_ready()
    clients.kernels.create(kernel_body("t1"))

    def creating_reconcile() -> dict[str, Any] | None:
        spans = receiver.collected()
        for span in spans:
            attrs = span["attributes"]
            if span["name"] == "reconcile" and attrs.get("k8s.kernel.name") == "t1":
                children = [s for s in spans if s["parent_span_id"] == span["span_id"]]
                if any(c["name"] == "create pods" for c in children):
                    return span
        return None

    span = eventually(creating_reconcile, timeout=30, message="no reconcile span with children")
    assert span["attributes"]["k8s.namespace.name"] == ns
    assert span["attributes"]["reconcile.result"] == "success"
    assert span["attributes"]["reconcile.id"]
    children = [s for s in receiver.collected() if s["parent_span_id"] == span["span_id"]]
    names = {c["name"] for c in children}
    assert {"patch kernels", "create pods", "create services"} <= names
    assert all(c["trace_id"] == span["trace_id"] for c in children)
    for child in children:
        assert child["attributes"]["http.response.status_code"] in (200, 201)

    def logged() -> list[dict[str, Any]]:
        return [
            line
            for line in proc.log_lines()
            if line.get("trace_id") == span["trace_id"] and line.get("kernel") == f"{ns}/t1"
        ]

    lines = eventually(logged, timeout=10, message="no log line with the trace id")
    assert all(line["reconcile_id"] == span["attributes"]["reconcile.id"] for line in lines)
