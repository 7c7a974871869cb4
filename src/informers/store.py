"""Thread-safe object store with named indexes (client-go's ``ThreadSafeStore`` + ``Indexer``).

Objects are kept frozen (:mod:`informers.frozen`): readers on any thread get the cached
object itself, which nobody can mutate. Every read and every index update happens under one
``RLock``; ``list()`` and ``by_index()`` return one consistent snapshot.

Only the owning informer's reflector thread writes; any thread reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NewType

ObjectKey = NewType("ObjectKey", str)
"""``namespace/name``, or ``name`` for cluster-scoped objects."""

Obj = Mapping[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]
KeyFunc = Callable[[Obj], ObjectKey]
ObjList = list[Obj]
KeyList = list[ObjectKey]
StrList = list[str]


def object_key(obj: Obj) -> ObjectKey:
    """The default key: ``namespace/name`` (``name`` when the object has no namespace)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    name = meta.get("name") or ""
    return ObjectKey(f"{namespace}/{name}" if namespace else name)


def split_key(key: str) -> tuple[str, str]:
    """``(namespace, name)`` of a key; namespace is "" for cluster-scoped keys."""
    namespace, _, name = key.rpartition("/")
    return namespace, name


@dataclass(frozen=True)
class DeletedFinalStateUnknown:
    """A deletion noticed by a relist, not by a watch event: ``obj`` is the last state the
    cache knew, which may be stale."""

    key: ObjectKey
    obj: Obj


def namespace_index(obj: Obj) -> list[str]:
    """Index function: the object's namespace."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    return [namespace] if namespace else []


def controller_uid_index(obj: Obj) -> list[str]:
    """Index function: the uid of the object's controlling owner, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("uid"):
            return [str(ref["uid"])]
    return []


NAMESPACE_INDEX = "namespace"
CONTROLLER_UID_INDEX = "controller-uid"


class Indexer:
    """A keyed store of frozen objects with named secondary indexes."""

    def __init__(
        self,
        *,
        key_func: KeyFunc = object_key,
        indexers: Mapping[str, IndexFunc] | None = None,
    ) -> None:
        self.key_func = key_func
        self._lock = threading.RLock()
        self._items: dict[ObjectKey, Obj] = {}  # guarded by _lock
        self._indexers: dict[str, IndexFunc] = dict(indexers or {})  # guarded by _lock
        # index name -> indexed value -> keys; guarded by _lock
        self._indices: dict[str, dict[str, set[ObjectKey]]] = {n: {} for n in self._indexers}

    # ------------------------------------------------------------------ reads
    def get(self, key: str) -> Obj | None:
        with self._lock:
            return self._items.get(ObjectKey(key))

    def get_by_object(self, obj: Obj) -> Obj | None:
        return self.get(self.key_func(obj))

    def list(self) -> ObjList:
        with self._lock:
            return list(self._items.values())

    def keys(self) -> KeyList:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def by_index(self, index_name: str, value: str) -> ObjList:
        """The objects whose index function ``index_name`` yields ``value``."""
        with self._lock:
            keys = self._index(index_name).get(value, ())
            return [self._items[k] for k in keys]

    def index_keys(self, index_name: str, value: str) -> KeyList:
        with self._lock:
            return list(self._index(index_name).get(value, ()))

    def index_values(self, index_name: str) -> StrList:
        with self._lock:
            return list(self._index(index_name))

    # ----------------------------------------------------------------- writes
    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        """Add indexes (also over the objects already stored)."""
        with self._lock:
            for name, func in indexers.items():
                if name in self._indexers:
                    raise ValueError(f"index {name!r} already exists")
                self._indexers[name] = func
                self._indices[name] = {}
                for key, obj in self._items.items():
                    self._index_add(name, key, obj)

    def upsert(self, obj: Obj) -> Obj | None:
        """Store ``obj`` (already frozen); return the object it replaced, if any."""
        key = self.key_func(obj)
        with self._lock:
            old = self._items.get(key)
            if old is not None:
                self._unindex(key, old)
            self._items[key] = obj
            for name in self._indexers:
                self._index_add(name, key, obj)
            return old

    def remove(self, key: str) -> Obj | None:
        """Remove ``key``; return the object it held, if any."""
        with self._lock:
            old = self._items.pop(ObjectKey(key), None)
            if old is not None:
                self._unindex(ObjectKey(key), old)
            return old

    def replace(self, objs: Iterable[Obj]) -> tuple[dict[ObjectKey, Obj], dict[ObjectKey, Obj]]:
        """Replace the whole contents at once.

        Returns ``(old, new)`` maps of the contents before and after, so the caller can tell
        added, changed and vanished objects.
        """
        new = {self.key_func(obj): obj for obj in objs}
        with self._lock:
            old = self._items
            self._items = new
            self._indices = {name: {} for name in self._indexers}
            for name in self._indexers:
                for key, obj in new.items():
                    self._index_add(name, key, obj)
        return old, new

    # -------------------------------------------------------------- internals
    def _index(self, name: str) -> dict[str, set[ObjectKey]]:
        try:
            return self._indices[name]
        except KeyError:
            raise KeyError(f"no index named {name!r}") from None

    def _index_add(self, name: str, key: ObjectKey, obj: Obj) -> None:
        index = self._indices[name]
        for value in self._indexers[name](obj):
            index.setdefault(value, set()).add(key)

    def _unindex(self, key: ObjectKey, obj: Obj) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
