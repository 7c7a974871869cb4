"""Fixtures for Kernel controller tests on the real control plane: the controller running
in-process (limited to the test's namespace), request counting, and small object helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from apistate import CountingObserver
from informers import RestClient
from reconcilers.controller import KernelController
from reconcilers.model import ReconcileSettings


@pytest.fixture
def requests() -> CountingObserver:
    """Counts the controller's own requests by verb (and by verb:resource)."""
    return CountingObserver()


@pytest.fixture
def start_controller(
    api_client: client.ApiClient, namespace: str, requests: CountingObserver
) -> Iterator[Callable[..., KernelController]]:
    started: list[KernelController] = []

    def start(settings: ReconcileSettings | None = None, **kwargs: Any) -> KernelController:
        controller = KernelController(
            rest=RestClient(api_client, observer=requests),
            settings=settings or ReconcileSettings(),
            instance="test",
            namespaces=[namespace],
            workers=2,
            **kwargs,
        )
        started.append(controller)
        controller.start()
        assert controller.wait_for_sync(30)
        controller.start_workers()
        return controller

    yield start
    for controller in started:
        controller.stop(drain_timeout=10)
