"""The ACLs of each role: what each principal may do, written out, and nothing more."""

from __future__ import annotations

import pytest
from kafka.admin import ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourceType

from streams.client.acls import ROLES, Role, check_principal, grants, to_acls
from streams.settings import load_settings

SETTINGS = load_settings(topic_prefix="p.", app_id="ps")


def _allowed(role: Role) -> set[tuple[str, str, bool]]:
    return {(g.name, op, g.prefixed) for g in grants(SETTINGS, role) for op in g.operations}


def test_the_producer_writes_events_only() -> None:
    assert _allowed("producer") == {
        (name, op, False)
        for name in ("p.events.browse", "p.events.search", "p.events.purchase")
        for op in ("write", "describe")
    }


def test_the_eraser_writes_erasure_requests_only() -> None:
    assert _allowed("eraser") == {("p.privacy.erasure", "write", False), ("p.privacy.erasure", "describe", False)}


def test_the_subscriber_reads_profiles_only() -> None:
    assert _allowed("subscriber") == {("p.profiles.updated", "read", False), ("p.profiles.updated", "describe", False)}


def test_the_worker_reads_its_inputs_writes_its_outputs_and_owns_its_app_id_topics() -> None:
    allowed = _allowed("worker")
    for name in ("p.events.browse", "p.events.search", "p.events.purchase", "p.privacy.erasure"):
        assert (name, "read", False) in allowed
        assert (name, "write", False) not in allowed
    for name in ("p.profiles.updated", "p.events.deadletter"):
        assert (name, "write", False) in allowed
        assert (name, "read", False) not in allowed
    owned = {"ps-user-state-changelog", "ps-__assignor-__leader"}
    for name in owned:
        assert {op for topic, op, _ in allowed if topic == name} == {"create", "read", "write", "describe"}
    assert not any(prefixed for _, _, prefixed in allowed), "no prefix: it would cover other app ids' changelogs"
    assert ("ps", "read", False) in allowed  # the consumer group
    assert {name for name, op, _ in allowed if op == "create"} == owned


def test_every_grant_becomes_an_allow_acl_for_the_principal() -> None:
    for role in ROLES:
        role_grants = grants(SETTINGS, role)
        acls = to_acls("User:someone", role_grants)
        assert len(acls) == sum(len(g.operations) for g in role_grants)
        assert {a.principal for a in acls} == {"User:someone"}
        assert {a.permission_type for a in acls} == {ACLPermissionType.ALLOW}
        assert ACLOperation.ALL not in {a.operation for a in acls}
    group = [a for a in to_acls("User:w", grants(SETTINGS, "worker")) if a.resource_pattern.resource_name == "ps"]
    assert {a.resource_pattern.resource_type for a in group} == {ResourceType.GROUP}
    patterns = {a.resource_pattern.pattern_type for a in to_acls("User:w", grants(SETTINGS, "worker"))}
    assert patterns == {ACLResourcePatternType.LITERAL}


@pytest.mark.parametrize("principal", ["User:*", "User:", "someone", "Group:x", "User:a*", "User: x"])
def test_a_principal_must_name_one_user(principal: str) -> None:
    with pytest.raises(ValueError, match="one user"):
        check_principal(principal)
    check_principal("User:profilestream-worker")
