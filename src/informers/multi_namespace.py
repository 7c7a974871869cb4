"""One logical informer over several namespaces: a :class:`SharedInformer` per namespace
(or a single one over all namespaces), read and controlled as one.

Keys are ``namespace/name``, so a read goes straight to the informer of that namespace.
All methods are safe from any thread, as those of :class:`SharedInformer`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from informers.reflector import ReflectorStats
from informers.shared_informer import EventHandler, SharedInformer
from informers.store import Obj, split_key

ALL_NAMESPACES = ""
ObjList = list[Obj]
StatsList = list[ReflectorStats]


class MultiNamespaceInformer:
    """``factory(namespace)`` builds the informer of one namespace ("" = all namespaces)."""

    def __init__(
        self,
        *,
        namespaces: Sequence[str],
        factory: Callable[[str], SharedInformer],
    ) -> None:
        scopes = list(dict.fromkeys(namespaces)) or [ALL_NAMESPACES]
        self._by_namespace = {ns: factory(ns) for ns in scopes}
        self._all = self._by_namespace.get(ALL_NAMESPACES)

    @property
    def informers(self) -> list[SharedInformer]:
        return list(self._by_namespace.values())

    def informer_for(self, namespace: str) -> SharedInformer | None:
        if self._all is not None:
            return self._all
        return self._by_namespace.get(namespace)

    def get(self, key: str) -> Obj | None:
        namespace, _ = split_key(key)
        informer = self.informer_for(namespace)
        return informer.indexer.get(key) if informer is not None else None

    def list(self) -> ObjList:
        return [obj for inf in self._by_namespace.values() for obj in inf.indexer.list()]

    def by_index(self, index_name: str, value: str) -> ObjList:
        return [
            obj
            for inf in self._by_namespace.values()
            for obj in inf.indexer.by_index(index_name, value)
        ]

    def count(self) -> int:
        return sum(len(inf.indexer) for inf in self._by_namespace.values())

    def add_event_handler(self, handler: EventHandler) -> None:
        for informer in self._by_namespace.values():
            informer.add_event_handler(handler)

    def start(self) -> None:
        for informer in self._by_namespace.values():
            informer.start()

    def stop(self) -> None:
        for informer in self._by_namespace.values():
            informer.stop()

    def join(self, timeout: float = 10.0) -> None:
        for informer in self._by_namespace.values():
            informer.join(timeout)

    def has_synced(self) -> bool:
        return all(inf.has_synced() for inf in self._by_namespace.values())

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return all(inf.wait_for_sync(timeout) for inf in self._by_namespace.values())

    def threads_alive(self) -> bool:
        return all(inf.threads_alive() for inf in self._by_namespace.values())

    def stats(self) -> StatsList:
        return [inf.stats for inf in self._by_namespace.values()]
