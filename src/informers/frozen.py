"""Deeply read-only JSON values for caches.

:func:`freeze` turns parsed JSON into :class:`FrozenDict` / :class:`FrozenList`: subclasses of
``dict`` and ``list`` (so ``json.dumps``, ``==`` with plain values and ``isinstance`` checks keep
working, at the same memory cost) whose mutating methods raise ``TypeError``. A cached object
can therefore be handed to any thread without copying, and nobody can change it by accident.
:func:`thaw` (also used by ``copy.deepcopy``) returns a plain, mutable deep copy.

Every object parsed from its own watch event has its own copy of each key ("metadata",
"conditions", ...) and of each repeated value ("True", "Running", a timestamp). ``freeze``
replaces short strings by one shared copy from a bounded table, so a cache of thousands of
objects holds each such string once (about a third less memory for a cached Pod). The table is
not ``sys.intern`` (interned strings are immortal on some Python versions, and resource
versions never repeat): when it is full it is emptied, which only ends the sharing of strings
frozen before.
"""

from __future__ import annotations

from typing import Any, NoReturn


def _read_only(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(
        f"{type(self).__name__} is read-only: cached objects are shared; build a new one "
        "(informers.frozen.thaw gives a mutable copy)"
    )


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses mutation. Values are frozen too."""

    __slots__ = ()

    __setitem__ = _read_only
    __delitem__ = _read_only
    __ior__ = _read_only
    clear = _read_only
    pop = _read_only
    popitem = _read_only
    setdefault = _read_only
    update = _read_only

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, object]) -> dict[str, Any]:
        thawed: dict[str, Any] = thaw(self)
        return thawed

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        return (dict, (thaw(self),))


class FrozenList(list[Any]):
    """A ``list`` that refuses mutation. Items are frozen too."""

    __slots__ = ()

    __setitem__ = _read_only
    __delitem__ = _read_only
    __iadd__ = _read_only
    __imul__ = _read_only
    append = _read_only
    clear = _read_only
    extend = _read_only
    insert = _read_only
    pop = _read_only
    remove = _read_only
    reverse = _read_only
    sort = _read_only

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, object]) -> list[Any]:
        thawed: list[Any] = thaw(self)
        return thawed

    def __reduce__(self) -> tuple[type[list[Any]], tuple[list[Any]]]:
        return (list, (thaw(self),))


SHARED_MAX_LENGTH = 40  # a UUID or a timestamp is shared; a message or a JSON blob is not
SHARED_MAX_ENTRIES = 1 << 15

# The shared strings: dict operations are atomic, so reflector threads may use it at once.
_shared: dict[str, str] = {}


def share(text: str) -> str:
    """The shared copy of ``text`` when it is short; ``text`` itself otherwise."""
    if len(text) > SHARED_MAX_LENGTH:
        return text
    shared = _shared.setdefault(text, text)
    if len(_shared) > SHARED_MAX_ENTRIES:
        _shared.clear()
    return shared


def freeze(value: Any) -> Any:
    """A deeply read-only version of a JSON value (already frozen parts are reused), with
    short strings shared (see the module docstring)."""
    if isinstance(value, FrozenDict | FrozenList):
        return value
    # dict.__init__ and list.__init__ fill the object in C, past the read-only methods.
    if isinstance(value, dict):
        return FrozenDict({share(key): freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return FrozenList([freeze(item) for item in value])
    if isinstance(value, str):
        return share(value)
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable deep copy of a (possibly frozen) JSON value."""
    if isinstance(value, dict):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thaw(item) for item in value]
    return value
