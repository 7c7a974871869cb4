"""Typed access to one kind of API resource, as plain JSON ``dict`` objects.

:class:`Resource` names an API resource (group, version, plural) and builds its URL paths.
:class:`ResourceClient` lists, watches, reads and writes objects of it, optionally scoped to
one namespace; it satisfies the :class:`ListerWatcher` protocol a reflector needs.
Every method is a blocking HTTP call on the caller's thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from informers.client import JSON, MERGE_PATCH, Query, RequestInfo, RestClient, WatchStream

Object = dict[str, Any]
Params = list[tuple[str, str]]


@dataclass(frozen=True)
class Resource:
    """An API resource: ``Resource("", "v1", "pods")`` or ``Resource("apps", "v1", …)``."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, *, namespace: str | None = None, name: str | None = None, subresource: str = ""
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


class ListerWatcher(Protocol):
    """What a reflector needs: paginated LIST and WATCH of one (scoped) collection."""

    def list(self, *, limit: int, continue_token: str, resource_version: str) -> Object: ...

    def watch(
        self, *, resource_version: str, timeout_seconds: int, read_timeout: float
    ) -> WatchStream: ...

    def describe(self) -> str: ...


class ResourceClient:
    """Requests on one resource, scoped to ``namespace`` (None: all namespaces) and to
    ``label_selector``/``field_selector`` for list and watch."""

    def __init__(
        self,
        rest: RestClient,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> None:
        self.rest = rest
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector

    def describe(self) -> str:
        where = f"namespace {self.namespace}" if self.namespace else "all namespaces"
        sel = ",".join(s for s in (self.label_selector, self.field_selector) if s)
        return f"{self.resource.plural}.{self.resource.api_version} in {where}" + (
            f" ({sel})" if sel else ""
        )

    # ---------------------------------------------------------- list / watch
    def list(self, *, limit: int, continue_token: str, resource_version: str) -> Object:
        """One page of the collection. ``resource_version`` "" is a consistent read; any
        other value is served "not older than" it."""
        query = self._selectors()
        if limit:
            query.append(("limit", str(limit)))
        if continue_token:
            query.append(("continue", continue_token))
        elif resource_version:
            query.append(("resourceVersion", resource_version))
            if resource_version != "0":
                query.append(("resourceVersionMatch", "NotOlderThan"))
        result: Object = self.rest.request(
            "GET", self._path(), info=self._info("list"), query=query
        )
        return result

    def watch(
        self, *, resource_version: str, timeout_seconds: int, read_timeout: float
    ) -> WatchStream:
        query = self._selectors()
        query += [
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        return self.rest.watch(
            self._path(), info=self._info("watch"), query=query, read_timeout=read_timeout
        )

    # ------------------------------------------------------------ single objects
    def get(self, name: str, *, namespace: str | None = None) -> Object:
        result: Object = self.rest.request(
            "GET", self._path(namespace, name), info=self._info("get")
        )
        return result

    def create(self, body: Mapping[str, Any], *, namespace: str | None = None) -> Object:
        result: Object = self.rest.request(
            "POST", self._path(namespace), info=self._info("create"), body=body
        )
        return result

    def update(
        self, body: Mapping[str, Any], *, namespace: str | None = None, subresource: str = ""
    ) -> Object:
        """PUT ``body``; its ``metadata.resourceVersion`` makes it a conditional write."""
        name = body["metadata"]["name"]
        result: Object = self.rest.request(
            "PUT",
            self._path(namespace, name, subresource),
            info=self._info("update", subresource),
            body=body,
        )
        return result

    def patch(
        self,
        name: str,
        patch: Mapping[str, Any] | bytes,
        *,
        namespace: str | None = None,
        content_type: str = MERGE_PATCH,
        subresource: str = "",
        field_manager: str = "",
        force: bool = False,
    ) -> Object:
        query: Params = []
        if field_manager:
            query.append(("fieldManager", field_manager))
        if force:
            query.append(("force", "true"))
        result: Object = self.rest.request(
            "PATCH",
            self._path(namespace, name, subresource),
            info=self._info("patch", subresource),
            query=query,
            body=patch,
            content_type=content_type,
        )
        return result

    def delete(
        self,
        name: str,
        *,
        namespace: str | None = None,
        propagation: str = "Background",
        uid: str = "",
        resource_version: str = "",
        grace_period: int | None = None,
    ) -> Object:
        """Delete ``name``; with ``uid``, only if it is still that object, with
        ``resource_version`` only if it has not changed since (else ``Conflict``);
        ``grace_period`` seconds (0: at once, without waiting for a kubelet) instead of the
        object's own."""
        options: dict[str, Any] = {"propagationPolicy": propagation}
        preconditions = {
            k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v
        }
        if preconditions:
            options["preconditions"] = preconditions
        if grace_period is not None:
            options["gracePeriodSeconds"] = grace_period
        result: Object = self.rest.request(
            "DELETE",
            self._path(namespace, name),
            info=self._info("delete"),
            body=options,
            content_type=JSON,
        )
        return result

    # -------------------------------------------------------------- internals
    def _path(self, namespace: str | None = None, name: str = "", subresource: str = "") -> str:
        return self.resource.path(
            namespace=namespace or self.namespace, name=name or None, subresource=subresource
        )

    def _selectors(self) -> Params:
        query: Params = []
        if self.label_selector:
            query.append(("labelSelector", self.label_selector))
        if self.field_selector:
            query.append(("fieldSelector", self.field_selector))
        return query

    def _info(self, verb: str, subresource: str = "") -> RequestInfo:
        plural = self.resource.plural
        return RequestInfo(verb=verb, resource=f"{plural}/{subresource}" if subresource else plural)


__all__ = ["JSON", "ListerWatcher", "Object", "Query", "Resource", "ResourceClient"]
