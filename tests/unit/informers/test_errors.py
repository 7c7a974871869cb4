"""Unit tests of ``informers.errors``: Status bodies and headers become typed errors."""

from __future__ import annotations

import json

from informers.errors import (
    NAMESPACE_TERMINATING_CAUSE,
    Conflict,
    Forbidden,
    StatusCause,
    TooManyRequests,
    error_for_status,
)

TERMINATING = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "message": 'pods "k1" is forbidden: unable to create new content in namespace gone because '
    "it is being terminated",
    "reason": "Forbidden",
    "details": {
        "name": "k1",
        "kind": "pods",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": "namespace gone is being terminated",
                "field": "metadata.namespace",
            }
        ],
    },
    "code": 403,
}


def test_a_namespace_terminating_refusal_carries_its_cause() -> None:
    err = error_for_status(403, json.dumps(TERMINATING).encode(), {"Audit-Id": "a-1"})

    assert isinstance(err, Forbidden)
    assert err.namespace_terminating
    assert err.has_cause(NAMESPACE_TERMINATING_CAUSE)
    assert err.causes == (
        StatusCause(
            type="NamespaceTerminating",
            message="namespace gone is being terminated",
            field="metadata.namespace",
        ),
    )
    assert err.audit_id == "a-1"
    assert "being terminated" in err.message


def test_an_rbac_refusal_is_not_a_terminating_namespace() -> None:
    body = {"kind": "Status", "reason": "Forbidden", "message": "cannot create pods", "code": 403}

    err = error_for_status(403, json.dumps(body), {})

    assert isinstance(err, Forbidden)
    assert not err.namespace_terminating
    assert err.causes == ()


def test_retry_after_is_read_in_seconds_and_absent_is_none() -> None:
    throttled = error_for_status(429, b"", {"retry-after": "3"})
    bare = error_for_status(429, b"", {})
    bad = error_for_status(429, b"", {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})

    assert isinstance(throttled, TooManyRequests)
    assert throttled.retry_after == 3.0
    assert bare.retry_after is None
    assert bad.retry_after is None


def test_malformed_causes_are_ignored() -> None:
    body = {"reason": "AlreadyExists", "details": {"causes": ["x", {"message": "no reason"}]}}

    err = error_for_status(409, json.dumps(body), {})

    assert isinstance(err, Conflict)
    assert err.already_exists
    assert err.causes == ()
