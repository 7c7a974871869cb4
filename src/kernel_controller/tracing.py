"""OpenTelemetry tracing, configured only through the standard ``OTEL_*`` environment.

Tracing is on when an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or ``OTEL_TRACES_EXPORTER`` names ``otlp``, and not
disabled by ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. Otherwise the global
no-op tracer stays in place: spans cost nothing. The exporter (OTLP over HTTP/protobuf) reads
its endpoint, headers, timeout and the batch processor its delays from the same variables;
the resource from ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES``.

:class:`RequestSpans` turns every API request into a child span of the current reconcile span
(same thread). Span attributes name the resource, verb, method and status code, never a body.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SERVICE_NAME = "kernel-controller"
TRACER_NAME = "kernel-controller"


def tracing_enabled(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").lower()
    if exporters == "none":
        return False
    return bool(
        "otlp" in exporters
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure(environ: Mapping[str, str]) -> TracerProvider | None:
    """Install an SDK tracer provider with an OTLP exporter when the environment asks for it."""
    if not tracing_enabled(environ):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", SERVICE_NAME)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


class RequestSpans:
    """An ``informers.RequestObserver`` that records each API request as a span."""

    def __init__(self, tracer_: trace.Tracer) -> None:
        self._tracer = tracer_

    def request_done(
        self, *, method: str, verb: str, resource: str, code: int, seconds: float
    ) -> None:
        end = time.time_ns()
        span = self._tracer.start_span(
            f"{verb} {resource}",
            kind=trace.SpanKind.CLIENT,
            start_time=end - int(seconds * 1e9),
            attributes={
                "http.request.method": method,
                "http.response.status_code": code,
                "k8s.verb": verb,
                "k8s.resource": resource,
            },
        )
        if code == 0 or code >= 400:
            span.set_status(trace.StatusCode.ERROR)
        span.end(end_time=end)
