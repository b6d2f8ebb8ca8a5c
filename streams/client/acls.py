"""The Kafka ACLs each profilestream role needs, and nothing more: described as data, applied with the admin client.

A role is what one principal does: the ``worker`` reads the input and erasure topics and writes profiles, dead
letters and its own changelog (faust creates that, and its assignor's leader topic, under the app id); a
``producer`` writes events; an ``eraser`` writes erasure requests (whoever may erase any user is a smaller set
than whoever sends events: a privacy team's tool, not every producer app); a ``subscriber`` reads profiles. On a
broker that refuses everything without an ACL (``allow.everyone.if.no.acl.found=false``), each principal can then
do its job and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourceType,
)

from streams.client.security import kafka_client_options
from streams.contract.events import EVENT_TYPES
from streams.contract.topics import DEADLETTER, ERASURE, PROFILES, STATE_TABLE, input_topic
from streams.settings import Settings

Role = Literal["worker", "producer", "eraser", "subscriber"]
ROLES: Final[tuple[Role, ...]] = ("worker", "producer", "eraser", "subscriber")
Operation = Literal["read", "write", "create", "describe"]


@dataclass(frozen=True, slots=True)
class Grant:
    """Operations allowed on one topic or group (``prefixed``: every name that starts with ``name``)."""

    resource: Literal["topic", "group"]
    name: str
    operations: tuple[Operation, ...]
    prefixed: bool = False


def grants(settings: Settings, role: Role) -> list[Grant]:
    """What ``role`` needs on the settings' topics and group."""
    inputs = [settings.topic(input_topic(t)) for t in EVENT_TYPES]
    if role == "producer":
        return [Grant("topic", name, ("write", "describe")) for name in inputs]
    if role == "eraser":
        return [Grant("topic", settings.topic(ERASURE), ("write", "describe"))]
    if role == "subscriber":
        return [Grant("topic", settings.topic(PROFILES), ("read", "describe"))]
    return [
        *(Grant("topic", name, ("read", "describe")) for name in (*inputs, settings.topic(ERASURE))),
        *(Grant("topic", settings.topic(name), ("write", "describe")) for name in (PROFILES, DEADLETTER)),
        # faust's changelog topic and its assignor's leader topic, both named after the app id: by their names, not
        # by the prefix "<app_id>-", which would also cover another deployment whose app id starts with this one
        # (its changelog holds every user's state) and topics whose prefix happens to start so.
        *(Grant("topic", name, ("create", "read", "write", "describe")) for name in faust_topics(settings.app_id)),
        Grant("group", settings.app_id, ("read", "describe")),
    ]


def faust_topics(app_id: str) -> tuple[str, str]:
    """The topics faust creates for the worker of ``app_id``: the state table's changelog, the assignor's leader."""
    return f"{app_id}-{STATE_TABLE}-changelog", f"{app_id}-__assignor-__leader"


def check_principal(principal: str) -> None:
    """Raise ValueError unless ``principal`` names one user (``User:<name>``): a wildcard would give the role to
    every principal of the cluster."""
    kind, _, name = principal.partition(":")
    if kind != "User" or not name or "*" in name or name != name.strip():
        raise ValueError(f"a principal is User:<name>, one user without wildcards, not {principal!r}")


_OPERATIONS: Final = {
    "read": ACLOperation.READ,
    "write": ACLOperation.WRITE,
    "create": ACLOperation.CREATE,
    "describe": ACLOperation.DESCRIBE,
}
_RESOURCES: Final = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}


def to_acls(principal: str, role_grants: list[Grant]) -> list[ACL]:
    """kafka-python ACL objects allowing ``principal`` (``User:<name>``) the grants, from any host."""
    acls: list[ACL] = []
    for grant in role_grants:
        pattern = ResourcePattern(
            _RESOURCES[grant.resource],
            grant.name,
            ACLResourcePatternType.PREFIXED if grant.prefixed else ACLResourcePatternType.LITERAL,
        )
        acls.extend(
            ACL(principal, "*", _OPERATIONS[operation], ACLPermissionType.ALLOW, pattern)
            for operation in grant.operations
        )
    return acls


def apply_grants(settings: Settings, principal: str, role: Role) -> int:
    """Create the ACLs of ``role`` for ``principal`` with the settings' (administrator's) login; returns how many.
    Raises ValueError for a principal that is not one user (:func:`check_principal`).

    Creating an ACL that exists changes nothing, so this can run at every deployment.
    """
    check_principal(principal)
    acls = to_acls(principal, grants(settings, role))
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-acls",
        **kafka_client_options(settings),
    )
    try:
        result = admin.create_acls(acls)
    finally:
        admin.close()
    failed = result.get("failed") or []
    if failed:
        raise RuntimeError(f"the broker refused {len(failed)} of {len(acls)} ACLs: {failed[0]}")
    return len(acls)
