"""Unit tests of ``informers.store``: keys, the indexer, its indexes and thread safety."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from informers.frozen import freeze
from informers.store import (
    CONTROLLER_UID_INDEX,
    NAMESPACE_INDEX,
    Indexer,
    Obj,
    ObjectKey,
    controller_uid_index,
    namespace_index,
    object_key,
    split_key,
)

JOIN_TIMEOUT = 5.0


def obj(
    name: str,
    namespace: str | None = "ns",
    *,
    rv: str = "1",
    owner: str | None = None,
    owner_is_controller: bool = True,
) -> Obj:
    metadata: dict[str, Any] = {"name": name, "resourceVersion": rv}
    if namespace is not None:
        metadata["namespace"] = namespace
    if owner is not None:
        metadata["ownerReferences"] = [
            {"kind": "Kernel", "name": "k", "uid": owner, "controller": owner_is_controller}
        ]
    frozen: Obj = freeze({"kind": "Pod", "metadata": metadata})
    return frozen


def indexer() -> Indexer:
    return Indexer(
        indexers={NAMESPACE_INDEX: namespace_index, CONTROLLER_UID_INDEX: controller_uid_index}
    )


def names(objs: list[Obj]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


# ------------------------------------------------------------------------------ keys
@pytest.mark.parametrize(
    ("o", "key"),
    [
        pytest.param(obj("a", "ns"), "ns/a", id="namespaced"),
        pytest.param(obj("node-1", None), "node-1", id="cluster-scoped"),
        pytest.param(obj("a", ""), "a", id="empty-namespace"),
        pytest.param({"kind": "Pod"}, "", id="no-metadata"),
    ],
)
def test_object_key(o: Obj, key: str) -> None:
    assert object_key(o) == key


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        pytest.param("ns/a", ("ns", "a"), id="namespaced"),
        pytest.param("node-1", ("", "node-1"), id="cluster-scoped"),
        pytest.param("", ("", ""), id="empty"),
    ],
)
def test_split_key(key: str, parts: tuple[str, str]) -> None:
    assert split_key(key) == parts


@pytest.mark.parametrize(
    "o", [obj("a", "ns"), obj("node-1", None)], ids=["namespaced", "cluster-scoped"]
)
def test_split_key_inverts_object_key(o: Obj) -> None:
    namespace, name = split_key(object_key(o))

    assert name == o["metadata"]["name"]
    assert namespace == o["metadata"].get("namespace", "")


# ---------------------------------------------------------------- basic operations
def test_upsert_get_list_remove() -> None:
    store = indexer()
    a1, a2, b = obj("a", rv="1"), obj("a", rv="2"), obj("b", None)

    assert store.upsert(a1) is None
    assert store.upsert(b) is None
    assert store.upsert(a2) is a1

    assert store.get("ns/a") is a2
    assert store.get("b") is b
    assert store.get_by_object(obj("a")) is a2
    assert store.get("ns/missing") is None
    assert sorted(store.keys()) == ["b", "ns/a"]
    assert names(store.list()) == ["a", "b"]
    assert len(store) == 2

    assert store.remove("ns/a") is a2
    assert store.remove("ns/a") is None
    assert store.get("ns/a") is None
    assert store.keys() == [ObjectKey("b")]
    assert len(store) == 1


def test_custom_key_func() -> None:
    store = Indexer(key_func=lambda o: ObjectKey(o["metadata"]["uid"]))
    o: Obj = freeze({"metadata": {"name": "a", "uid": "u-1"}})

    store.upsert(o)

    assert store.keys() == ["u-1"]
    assert store.get("u-1") is o


# ------------------------------------------------------------------------- indexes
def test_namespace_index() -> None:
    store = indexer()
    for o in (obj("a", "ns1"), obj("b", "ns1"), obj("c", "ns2"), obj("node", None)):
        store.upsert(o)

    assert names(store.by_index(NAMESPACE_INDEX, "ns1")) == ["a", "b"]
    assert names(store.by_index(NAMESPACE_INDEX, "ns2")) == ["c"]
    assert store.by_index(NAMESPACE_INDEX, "nope") == []
    assert sorted(store.index_keys(NAMESPACE_INDEX, "ns1")) == ["ns1/a", "ns1/b"]
    assert sorted(store.index_values(NAMESPACE_INDEX)) == ["ns1", "ns2"]


@pytest.mark.parametrize(
    ("o", "values"),
    [
        pytest.param(obj("a", owner="u-1"), ["u-1"], id="controller-owner"),
        pytest.param(obj("a", owner="u-1", owner_is_controller=False), [], id="plain-owner"),
        pytest.param(obj("a"), [], id="no-owner"),
        pytest.param(
            freeze({"metadata": {"ownerReferences": [{"controller": True}]}}), [], id="no-uid"
        ),
    ],
)
def test_controller_uid_index_function(o: Obj, values: list[str]) -> None:
    assert controller_uid_index(o) == values


def test_controller_uid_index_follows_owner_changes_and_removal() -> None:
    store = indexer()
    store.upsert(obj("pod", owner="u-1"))
    store.upsert(obj("other", owner="u-1"))

    assert names(store.by_index(CONTROLLER_UID_INDEX, "u-1")) == ["other", "pod"]

    store.upsert(obj("pod", owner="u-2", rv="2"))

    assert names(store.by_index(CONTROLLER_UID_INDEX, "u-1")) == ["other"]
    assert names(store.by_index(CONTROLLER_UID_INDEX, "u-2")) == ["pod"]
    assert store.by_index(CONTROLLER_UID_INDEX, "u-2")[0]["metadata"]["resourceVersion"] == "2"

    store.remove("ns/pod")
    store.remove("ns/other")

    assert store.by_index(CONTROLLER_UID_INDEX, "u-1") == []
    assert store.by_index(CONTROLLER_UID_INDEX, "u-2") == []
    assert store.index_values(CONTROLLER_UID_INDEX) == []
    assert store.index_values(NAMESPACE_INDEX) == []


def test_index_entry_dropped_when_owner_removed() -> None:
    store = indexer()
    store.upsert(obj("pod", owner="u-1"))

    store.upsert(obj("pod", rv="2"))

    assert store.index_values(CONTROLLER_UID_INDEX) == []
    assert store.get("ns/pod") is not None


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda s: s.by_index("nope", "x"), id="by_index"),
        pytest.param(lambda s: s.index_keys("nope", "x"), id="index_keys"),
        pytest.param(lambda s: s.index_values("nope"), id="index_values"),
    ],
)
def test_unknown_index_raises_key_error(read: Any) -> None:
    with pytest.raises(KeyError, match="no index named 'nope'"):
        read(indexer())


def test_add_indexers_indexes_existing_contents() -> None:
    store = Indexer()
    store.upsert(obj("a", "ns1", owner="u-1"))
    store.upsert(obj("b", "ns2"))

    store.add_indexers(
        {NAMESPACE_INDEX: namespace_index, CONTROLLER_UID_INDEX: controller_uid_index}
    )

    assert names(store.by_index(NAMESPACE_INDEX, "ns1")) == ["a"]
    assert names(store.by_index(NAMESPACE_INDEX, "ns2")) == ["b"]
    assert names(store.by_index(CONTROLLER_UID_INDEX, "u-1")) == ["a"]

    store.upsert(obj("c", "ns1"))

    assert names(store.by_index(NAMESPACE_INDEX, "ns1")) == ["a", "c"]


def test_add_indexers_rejects_an_existing_name() -> None:
    store = indexer()

    with pytest.raises(ValueError, match="already exists"):
        store.add_indexers({NAMESPACE_INDEX: namespace_index})


# ------------------------------------------------------------------------- replace
def test_replace_returns_old_and_new_contents_and_rebuilds_indexes() -> None:
    store = indexer()
    a, b1 = obj("a", "ns1", owner="u-1"), obj("b", "ns2")
    store.upsert(a)
    store.upsert(b1)
    b2, c = obj("b", "ns2", rv="2", owner="u-2"), obj("c", "ns3")

    old, new = store.replace([b2, c])

    assert old == {"ns1/a": a, "ns2/b": b1}
    assert new == {"ns2/b": b2, "ns3/c": c}
    assert sorted(store.keys()) == ["ns2/b", "ns3/c"]
    assert store.get("ns2/b") is b2
    assert store.by_index(NAMESPACE_INDEX, "ns1") == []
    assert names(store.by_index(NAMESPACE_INDEX, "ns3")) == ["c"]
    assert sorted(store.index_values(NAMESPACE_INDEX)) == ["ns2", "ns3"]
    assert store.by_index(CONTROLLER_UID_INDEX, "u-1") == []
    assert names(store.by_index(CONTROLLER_UID_INDEX, "u-2")) == ["b"]


def test_replace_with_nothing_empties_store_and_indexes() -> None:
    store = indexer()
    store.upsert(obj("a", owner="u-1"))

    old, new = store.replace([])

    assert list(old) == ["ns/a"]
    assert new == {}
    assert len(store) == 0
    assert store.index_values(NAMESPACE_INDEX) == []
    assert store.index_values(CONTROLLER_UID_INDEX) == []


# ----------------------------------------------------------------------- snapshots
def test_reads_return_snapshots_unaffected_by_later_writes() -> None:
    store = indexer()
    a, b = obj("a"), obj("b")
    store.upsert(a)
    store.upsert(b)

    listed = store.list()
    keys = store.keys()
    by_ns = store.by_index(NAMESPACE_INDEX, "ns")
    index_keys = store.index_keys(NAMESPACE_INDEX, "ns")
    values = store.index_values(NAMESPACE_INDEX)

    store.upsert(obj("c"))
    store.upsert(obj("a", rv="2"))
    store.remove("ns/b")
    store.replace([obj("z", "other")])

    assert listed == [a, b]
    assert listed[0] is a
    assert sorted(keys) == ["ns/a", "ns/b"]
    assert names(by_ns) == ["a", "b"]
    assert sorted(index_keys) == ["ns/a", "ns/b"]
    assert values == ["ns"]


# ---------------------------------------------------------------------- threading
def test_concurrent_readers_and_one_writer_see_no_errors_and_consistent_indexes() -> None:
    store = indexer()
    namespaces = [f"ns{i}" for i in range(4)]
    deadline = time.monotonic() + 0.3
    writer_done = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def write() -> None:
        n = 0
        try:
            while time.monotonic() < deadline:
                n += 1
                ns = namespaces[n % len(namespaces)]
                store.upsert(obj(f"o{n % 50}", ns, rv=str(n), owner=f"u-{n % 3}"))
                if n % 7 == 0:
                    store.remove(f"{ns}/o{(n * 3) % 50}")
                if n % 101 == 0:
                    store.replace([obj(f"o{i}", namespaces[i % 4], rv=str(n)) for i in range(20)])
        except BaseException as err:
            errors.append(err)
        finally:
            writer_done.set()

    def read() -> None:
        try:
            while not writer_done.is_set():
                for ns in namespaces:
                    for o in store.by_index(NAMESPACE_INDEX, ns):
                        assert o["metadata"]["namespace"] == ns
                for uid in store.index_values(CONTROLLER_UID_INDEX):
                    for o in store.by_index(CONTROLLER_UID_INDEX, uid):
                        assert controller_uid_index(o) == [uid]
                snapshot = store.list()
                assert len({object_key(o) for o in snapshot}) == len(snapshot)
                keys = store.keys()  # an Indexer is not iterable
                for key in keys:
                    store.get(key)
                reads[0] += 1
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=write, name="store-writer")] + [
        threading.Thread(target=read, name=f"store-reader-{i}") for i in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)

    assert not [t.name for t in threads if t.is_alive()]
    assert errors == []
    assert reads[0] > 0
    assert len(store) > 0
