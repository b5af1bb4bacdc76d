"""The ACL set of ``deploy/acls.json``: expanded for a topic prefix and app id, and applied with kafka-python.

One principal per role (gateway, worker, alerts). Everything not listed is refused, because the broker runs
StandardAuthorizer with ``allow.everyone.if.no.acl.found=false``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ACL_FILE = Path(__file__).resolve().parents[2] / "deploy" / "acls.json"


@dataclass(frozen=True)
class Grant:
    """One ALLOW entry: ``principal`` may do ``operation`` on a topic or group (literal or prefixed name)."""

    role: str
    principal: str
    resource: str  # "topic" or "group"
    name: str
    prefixed: bool
    operation: str


def load_grants(
    prefix: str, app_id: str, principals: dict[str, str] | None = None, path: Path = ACL_FILE
) -> list[Grant]:
    """The grants of every role, with ``{prefix}`` and ``{app_id}`` filled in and principals optionally renamed."""
    spec = json.loads(path.read_text())
    grants: list[Grant] = []
    for role, entry in spec["roles"].items():
        principal = (principals or {}).get(role, entry["principal"])
        for rule in entry["allow"]:
            resource, raw = next((k, v) for k, v in rule.items() if k in _RESOURCE_KEYS)
            name = raw.format(prefix=prefix, app_id=app_id)
            for op in rule["operations"]:
                kind, prefixed = _RESOURCE_KEYS[resource]
                grants.append(Grant(role, principal, kind, name, prefixed, op))
    return grants


_RESOURCE_KEYS = {
    "topic": ("topic", False),
    "topic_prefix": ("topic", True),
    "group": ("group", False),
    "group_prefix": ("group", True),
}


def apply_grants(admin_kwargs: dict[str, object], grants: list[Grant]) -> int:
    """Create the ACLs (idempotent on the broker side); return how many were sent."""
    from kafka import KafkaAdminClient
    from kafka.admin import ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern, ResourceType

    acls = [
        ACL(
            principal=g.principal,
            host="*",
            operation=ACLOperation[g.operation],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType.TOPIC if g.resource == "topic" else ResourceType.GROUP,
                g.name,
                ACLResourcePatternType.PREFIXED if g.prefixed else ACLResourcePatternType.LITERAL,
            ),
        )
        for g in grants
    ]
    admin = KafkaAdminClient(**admin_kwargs, client_id="vitalstream-acls")
    try:
        result = admin.create_acls(acls)
    finally:
        admin.close()
    if result["failed"]:
        acl, error = result["failed"][0]
        raise RuntimeError(f"{len(result['failed'])} ACLs were refused, the first ({acl}) with {error}")
    log.info("applied %d ACLs", len(acls))
    return len(acls)


def as_commands(grants: list[Grant], bootstrap: str = "BROKER:9093") -> list[str]:
    """The same grants as ``kafka-acls.sh`` command lines, for applying them to a cluster by hand."""
    lines = []
    for g in grants:
        pattern = " --resource-pattern-type prefixed" if g.prefixed else ""
        lines.append(
            f"kafka-acls.sh --bootstrap-server {bootstrap} --command-config admin.properties --add "
            f"--allow-principal '{g.principal}' --operation {g.operation.title()} --{g.resource} '{g.name}'{pattern}"
        )
    return lines
