"""Fixtures for informer tests against the real control plane."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from apistate import CONFIGMAPS, CountingObserver
from informers.client import RestClient
from informers.resource import ResourceClient
from informers.shared_informer import SharedInformer


@pytest.fixture
def observer() -> CountingObserver:
    return CountingObserver()


@pytest.fixture
def rest(api_client: client.ApiClient, observer: CountingObserver) -> RestClient:
    return RestClient(api_client, observer=observer)


@pytest.fixture
def configmaps(rest: RestClient, namespace: str) -> ResourceClient:
    return ResourceClient(rest, CONFIGMAPS, namespace=namespace)


@pytest.fixture
def start_informer() -> Iterator[Callable[..., SharedInformer]]:
    """Start informers for a test; they are stopped and joined afterwards."""
    started: list[SharedInformer] = []

    def start(**kwargs: Any) -> SharedInformer:
        informer = SharedInformer(**kwargs)
        started.append(informer)
        return informer

    yield start
    for informer in started:
        informer.stop()
    for informer in started:
        informer.join()
