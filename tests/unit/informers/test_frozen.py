"""Unit tests of ``informers.frozen``: deep read-only JSON values and their mutable copies."""

from __future__ import annotations

import copy
import json
import operator
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from informers import frozen
from informers.frozen import FrozenDict, FrozenList, freeze, thaw


def sample() -> dict[str, Any]:
    """A Kubernetes-like object with dicts in lists in dicts, and every JSON scalar type."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cm",
            "namespace": "ns",
            "labels": {"app": "demo"},
            "ownerReferences": [{"uid": "u-1", "controller": True}],
            "finalizers": ["a", "b"],
        },
        "data": {"ratio": 0.5, "count": 3, "empty": None, "enabled": False},
        "matrix": [[1, 2], [3, {"deep": ["x"]}]],
    }


def test_freeze_is_deep() -> None:
    frozen = freeze(sample())

    assert type(frozen) is FrozenDict
    assert type(frozen["metadata"]) is FrozenDict
    assert type(frozen["metadata"]["labels"]) is FrozenDict
    assert type(frozen["metadata"]["ownerReferences"]) is FrozenList
    assert type(frozen["metadata"]["ownerReferences"][0]) is FrozenDict
    assert type(frozen["matrix"]) is FrozenList
    assert type(frozen["matrix"][1]) is FrozenList
    assert type(frozen["matrix"][1][1]) is FrozenDict
    assert type(frozen["matrix"][1][1]["deep"]) is FrozenList


def test_freeze_does_not_touch_its_input() -> None:
    original = sample()

    freeze(original)

    assert original == sample()
    assert type(original["metadata"]) is dict
    assert type(original["matrix"]) is list


@pytest.mark.parametrize("scalar", [3, 0.5, True, None], ids=["int", "float", "bool", "none"])
def test_freeze_returns_scalars_unchanged(scalar: object) -> None:
    assert freeze(scalar) is scalar


def test_freeze_shares_short_strings_between_separately_parsed_objects() -> None:
    # Two watch events: two json.loads calls, so every key and value is a separate str.
    text = '{"metadata": {"name": "k-1", "uid": "6f1e2d3c-aaaa-4bbb-8ccc-dddddddddddd"}}'
    first, second = freeze(json.loads(text)), freeze(json.loads(text))

    (key_1,), (key_2,) = first.keys(), second.keys()
    assert key_1 is key_2
    assert first["metadata"]["name"] is second["metadata"]["name"]
    assert first["metadata"]["uid"] is second["metadata"]["uid"]  # 36 characters: shared


def test_freeze_keeps_long_strings_as_they_are() -> None:
    message = "x" * (frozen.SHARED_MAX_LENGTH + 1)
    first, second = freeze([message]), freeze(["".join(message)])

    assert first[0] == second[0]
    assert first[0] is message
    assert second[0] is not message


def test_the_shared_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frozen, "SHARED_MAX_ENTRIES", 10)
    monkeypatch.setattr(frozen, "_shared", {})

    values = freeze([f"value-{i}" for i in range(100)])

    assert len(frozen._shared) <= 10
    assert values == [f"value-{i}" for i in range(100)]  # emptying the table loses nothing


def _ior(target: Any) -> None:
    target |= {"x": 1}


def _iadd(target: Any) -> None:
    target += [1]


def _imul(target: Any) -> None:
    target *= 2


DICT_MUTATORS = [
    pytest.param(lambda d: operator.setitem(d, "x", 1), id="setitem-new-key"),
    pytest.param(lambda d: operator.setitem(d, "kind", "Pod"), id="setitem-existing-key"),
    pytest.param(lambda d: operator.delitem(d, "kind"), id="delitem"),
    pytest.param(_ior, id="ior"),
    pytest.param(lambda d: d.clear(), id="clear"),
    pytest.param(lambda d: d.pop("kind"), id="pop"),
    pytest.param(lambda d: d.pop("missing", None), id="pop-missing-with-default"),
    pytest.param(lambda d: d.popitem(), id="popitem"),
    pytest.param(lambda d: d.setdefault("x", 1), id="setdefault"),
    pytest.param(lambda d: d.update({"x": 1}), id="update"),
    pytest.param(lambda d: d.update(x=1), id="update-kwargs"),
]

LIST_MUTATORS = [
    pytest.param(lambda xs: operator.setitem(xs, 0, "z"), id="setitem"),
    pytest.param(lambda xs: operator.setitem(xs, slice(0, 1), ["z"]), id="setitem-slice"),
    pytest.param(lambda xs: operator.delitem(xs, 0), id="delitem"),
    pytest.param(lambda xs: operator.delitem(xs, slice(None)), id="delitem-slice"),
    pytest.param(_iadd, id="iadd"),
    pytest.param(_imul, id="imul"),
    pytest.param(lambda xs: xs.append("z"), id="append"),
    pytest.param(lambda xs: xs.clear(), id="clear"),
    pytest.param(lambda xs: xs.extend(["z"]), id="extend"),
    pytest.param(lambda xs: xs.insert(0, "z"), id="insert"),
    pytest.param(lambda xs: xs.pop(), id="pop"),
    pytest.param(lambda xs: xs.remove("a"), id="remove"),
    pytest.param(lambda xs: xs.reverse(), id="reverse"),
    pytest.param(lambda xs: xs.sort(), id="sort"),
]


@pytest.mark.parametrize("mutate", DICT_MUTATORS)
def test_every_dict_mutator_raises(mutate: Callable[[Any], object]) -> None:
    frozen = freeze(sample())

    with pytest.raises(TypeError, match="FrozenDict is read-only"):
        mutate(frozen)

    assert frozen == sample()


@pytest.mark.parametrize("mutate", DICT_MUTATORS)
def test_every_dict_mutator_raises_on_nested_dicts(mutate: Callable[[Any], object]) -> None:
    frozen = freeze({"outer": [{"kind": "Inner"}]})

    with pytest.raises(TypeError, match="read-only"):
        mutate(frozen["outer"][0])

    assert frozen == {"outer": [{"kind": "Inner"}]}


@pytest.mark.parametrize("mutate", LIST_MUTATORS)
def test_every_list_mutator_raises(mutate: Callable[[Any], object]) -> None:
    frozen = freeze(sample())
    finalizers = frozen["metadata"]["finalizers"]

    with pytest.raises(TypeError, match="FrozenList is read-only"):
        mutate(finalizers)

    assert finalizers == ["a", "b"]


def test_error_message_points_to_thaw() -> None:
    with pytest.raises(TypeError, match=r"informers\.frozen\.thaw"):
        freeze({})["x"] = 1


@pytest.mark.parametrize(
    "value",
    [sample(), [1, {"a": [2]}], {}, []],
    ids=["object", "list-of-mixed", "empty-dict", "empty-list"],
)
def test_frozen_equals_plain_value_both_ways(value: Any) -> None:
    frozen = freeze(value)

    assert frozen == value
    assert value == frozen
    assert (frozen != value) is False
    assert isinstance(frozen, dict | list)


def test_frozen_differs_from_a_different_plain_value() -> None:
    other = sample()
    other["metadata"]["labels"]["app"] = "other"

    assert freeze(sample()) != other


def test_json_dumps_of_frozen_matches_plain() -> None:
    assert json.dumps(freeze(sample()), sort_keys=True) == json.dumps(sample(), sort_keys=True)


def assert_plain(value: Any) -> None:
    """``value`` and everything inside it are plain ``dict``/``list``, not frozen ones."""
    if isinstance(value, dict):
        assert type(value) is dict
        for item in value.values():
            assert_plain(item)
    elif isinstance(value, list):
        assert type(value) is list
        for item in value:
            assert_plain(item)


@pytest.mark.parametrize(
    "to_plain",
    [
        pytest.param(thaw, id="thaw"),
        pytest.param(copy.deepcopy, id="deepcopy"),
        pytest.param(lambda v: copy.deepcopy({"wrapped": v})["wrapped"], id="deepcopy-nested"),
        pytest.param(lambda v: pickle.loads(pickle.dumps(v)), id="pickle"),  # noqa: S301
    ],
)
def test_plain_copies_are_deep_mutable_and_independent(to_plain: Callable[[Any], Any]) -> None:
    frozen = freeze(sample())

    plain = to_plain(frozen)

    assert plain == sample()
    assert_plain(plain)
    plain["metadata"]["labels"]["app"] = "changed"
    plain["matrix"][1][1]["deep"].append("y")
    del plain["kind"]
    assert frozen == sample()


def test_shallow_copy_is_a_plain_dict_with_frozen_values() -> None:
    frozen = freeze(sample())

    shallow = copy.copy(frozen)
    shallow["kind"] = "Pod"

    assert type(shallow) is dict
    assert shallow["metadata"] is frozen["metadata"]
    assert frozen["kind"] == "ConfigMap"


def test_shallow_copy_of_list_is_a_plain_list() -> None:
    frozen = freeze([{"a": 1}])

    shallow = copy.copy(frozen)
    shallow.append(2)

    assert type(shallow) is list
    assert shallow[0] is frozen[0]
    assert frozen == [{"a": 1}]


def test_thaw_of_plain_value_is_a_copy() -> None:
    original = sample()

    thawed = thaw(original)
    thawed["metadata"]["labels"]["app"] = "changed"

    assert original == sample()


@pytest.mark.parametrize(
    "frozen",
    [freeze({"a": [1]}), freeze([{"a": 1}])],
    ids=["frozen-dict", "frozen-list"],
)
def test_already_frozen_value_is_returned_as_is(frozen: Any) -> None:
    assert freeze(frozen) is frozen


def test_already_frozen_parts_are_reused_inside_a_new_value() -> None:
    metadata = freeze({"name": "cm", "labels": {"a": "b"}})
    items = freeze([1, 2])

    frozen = freeze({"metadata": metadata, "items": items, "spec": {"x": 1}})

    assert frozen["metadata"] is metadata
    assert frozen["items"] is items
    assert type(frozen["spec"]) is FrozenDict
