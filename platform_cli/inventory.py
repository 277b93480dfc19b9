"""The declared inventory of a stack: a stable, secret-free JSON document, and diffs between two.

Built from what `platform_cli.offline` recorded (the program run under mocks). It lists DECLARED
resources and their inputs, not live cloud state. Everything here is pure: the same `Declared`
gives a byte-identical document (sorted keys, sorted resources, integral floats as ints), which is
what makes committed snapshots reviewable and the snapshot test meaningful.

Secrets never reach an inventory: values Pulumi marks secret (the wire wrapper the mock monitor
records) become `SECRET_MARKER`, and so does any string under a key that names a credential, or
the data of a Kubernetes Secret, whether or not the program remembered to mark it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra.policies.values import is_wrapped_secret
from platform_cli.offline import SECRET_MARKER, Declared

INVENTORY_FORMAT = 1
NOTE = (
    "Resources DECLARED by the Pulumi program, recorded offline under the SDK's mock monitor. "
    "This is not a diff against live cloud state."
)

# Keys whose string values are credentials. Matched on the lowercased key's ending, so
# `masterPassword` and `secretString` match while `secretArn`, `masterUserSecretKmsKeyId` and
# `httpTokens` (an IMDS setting) do not.
_SECRET_KEY = re.compile(
    r"(password|passwd|passphrase|secret|secretstring|secretbinary|secretvalue|secretkey|"
    r"token|privatekey|apikey|credential|credentials|kubeconfig|certificatekey)$"
)
# Resource types whose whole payload fields are secret material.
_SECRET_PAYLOADS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Secret": ("data", "stringData"),
}


# Keys that look like credentials but, on these types, hold a name: an ExternalSecret's
# `secretKey` is the key inside the Kubernetes Secret it writes (e.g. DB_USER), not a value.
_NAME_NOT_SECRET: dict[str, frozenset[str]] = {
    "kubernetes:external-secrets.io/v1:ExternalSecret": frozenset({"secretKey"}),
    "kubernetes:external-secrets.io/v1beta1:ExternalSecret": frozenset({"secretKey"}),
}


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key.lower().replace("_", "").replace("-", "")))


def scrub(value: Any, key: str = "", keep: frozenset[str] = frozenset()) -> Any:
    """A JSON-ready copy of `value` with every secret replaced by the marker.

    `keep` names secret-looking keys that hold names on this resource type (never wrapped secrets).
    """
    if is_wrapped_secret(value):
        return SECRET_MARKER
    if isinstance(value, Mapping):
        return {str(k): scrub(v, str(k), keep) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [scrub(item, key, keep) for item in value]
    if key and key not in keep and isinstance(value, str) and value and is_secret_key(key):
        return SECRET_MARKER
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire has one number type; 443.0 reads better as 443
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # assets/archives/resource references: their text form is stable


def _provider_urn(reference: str | None) -> str | None:
    """A provider reference is `<urn>::<id>`; the URN alone is the stable part."""
    if not reference:
        return None
    return reference.rsplit("::", 1)[0] if reference.count("::") > 3 else reference


def build_inventory(declared: Declared, stack: str) -> dict[str, Any]:
    """The inventory document for one stack."""
    resources = []
    for resource in declared.resources:
        inputs = scrub(resource.inputs, keep=_NAME_NOT_SECRET.get(resource.type, frozenset()))
        for payload_key in _SECRET_PAYLOADS.get(resource.type, ()):
            if payload_key in inputs:
                inputs[payload_key] = SECRET_MARKER
        resources.append(
            {
                "urn": resource.urn,
                "type": resource.type,
                "name": resource.name,
                "parent": resource.parent,
                "custom": resource.custom,
                "provider": _provider_urn(resource.provider),
                "protect": resource.protect,
                "dependencies": sorted(set(resource.dependencies)),
                "inputs": inputs,
            }
        )
    resources.sort(key=lambda r: r["urn"])
    return {
        "format": INVENTORY_FORMAT,
        "stack": stack,
        "note": NOTE,
        "counts": declared.counts_by_type(),
        "resourceCount": len(resources),
        "resources": resources,
        "outputs": scrub(declared.outputs),
    }


def dumps(inventory: Mapping[str, Any]) -> str:
    """The canonical text of an inventory (what `--json` writes and snapshots hold)."""
    return json.dumps(inventory, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- Diff ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class InventoryDiff:
    """Resources added, removed and changed (by URN) between two inventories."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: Mapping[str, tuple[FieldChange, ...]] = field(default_factory=dict)
    outputs: tuple[FieldChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.outputs)

    def lines(self) -> list[str]:
        """A plain-text rendering: `+ urn`, `- urn`, `~ urn` followed by its field changes."""
        out = [f"+ {urn}" for urn in self.added]
        out += [f"- {urn}" for urn in self.removed]
        for urn, changes in sorted(self.changed.items()):
            out.append(f"~ {urn}")
            out += [f"    {_describe(c)}" for c in changes]
        if self.outputs:
            out.append("~ stack outputs")
            out += [f"    {_describe(c)}" for c in self.outputs]
        return out


def _describe(change: FieldChange) -> str:
    """`path: before -> after`; for lists of names (dependencies) only what was added/removed."""
    before, after = change.before, change.after
    if _is_name_list(before) and _is_name_list(after):
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        parts = [f"+{name}" for name in added] + [f"-{name}" for name in removed]
        return f"{change.path}: {', '.join(parts) or 'reordered'}"
    return f"{change.path}: {_short(before)} -> {_short(after)}"


def _is_name_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


_ABSENT = "<absent>"


def _short(value: Any, limit: int = 120) -> str:
    text = _ABSENT if value is _MISSING else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Missing:
    def __repr__(self) -> str:
        return _ABSENT


_MISSING: Any = _Missing()


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf values by dotted path (`ingress[0].fromPort`); empty containers are leaves too."""
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key in sorted(value):
            flat.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and value:
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value}


def _field_changes(before: Any, after: Any) -> tuple[FieldChange, ...]:
    old, new = flatten(before), flatten(after)
    return tuple(
        FieldChange(path, old.get(path, _MISSING), new.get(path, _MISSING))
        for path in sorted(old.keys() | new.keys())
        if old.get(path, _MISSING) != new.get(path, _MISSING)
    )


_COMPARED_FIELDS = ("type", "name", "parent", "custom", "provider", "protect", "dependencies")


def diff_inventories(before: Mapping[str, Any], after: Mapping[str, Any]) -> InventoryDiff:
    """What changed from `before` to `after` (both inventory documents)."""
    old = {r["urn"]: r for r in before.get("resources", [])}
    new = {r["urn"]: r for r in after.get("resources", [])}
    changed: dict[str, tuple[FieldChange, ...]] = {}
    for urn in sorted(old.keys() & new.keys()):
        changes = [
            FieldChange(name, old[urn].get(name), new[urn].get(name))
            for name in _COMPARED_FIELDS
            if old[urn].get(name) != new[urn].get(name)
        ]
        changes += [
            FieldChange(f"inputs.{c.path}" if c.path else "inputs", c.before, c.after)
            for c in _field_changes(old[urn].get("inputs", {}), new[urn].get("inputs", {}))
        ]
        if changes:
            changed[urn] = tuple(changes)
    return InventoryDiff(
        added=tuple(sorted(new.keys() - old.keys())),
        removed=tuple(sorted(old.keys() - new.keys())),
        changed=changed,
        outputs=_field_changes(before.get("outputs", {}), after.get("outputs", {})),
    )


# --- Graph --------------------------------------------------------------------------------------


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _short_type(type_: str) -> str:
    """`aws:ec2/securityGroup:SecurityGroup` -> `ec2:SecurityGroup` (enough to recognise it)."""
    parts = type_.split(":")
    if len(parts) == 3:
        return f"{parts[1].split('/')[0]}:{parts[2]}"
    return type_


def to_dot(inventory: Mapping[str, Any]) -> str:
    """The resource graph as graphviz DOT.

    Components become nested clusters (the parent/child tree), custom resources are boxes, and a
    dashed edge runs from a resource to each resource it explicitly depends on. Providers are left
    out: every resource would point at one, which hides the structure.
    """
    resources = [r for r in inventory.get("resources", []) if not r["type"].startswith("pulumi:")]
    by_parent: dict[str | None, list[Mapping[str, Any]]] = {}
    known = {r["urn"] for r in resources}
    for resource in resources:
        parent = resource.get("parent") if resource.get("parent") in known else None
        by_parent.setdefault(parent, []).append(resource)
    ids = {r["urn"]: f"n{index}" for index, r in enumerate(resources)}

    lines = [
        "digraph platform {",
        "  rankdir=LR;",
        '  graph [fontname="Helvetica", fontsize=11, label='
        + _dot_quote(f"stack {inventory.get('stack')}: declared resources")
        + ", labelloc=t];",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", '
        "fontsize=9];",
        '  edge [color="#8899aa", arrowsize=0.6];',
    ]

    def emit(parent: str | None, indent: str) -> None:
        for resource in by_parent.get(parent, []):
            label = f"{resource['name']}\\n{_short_type(resource['type'])}"
            if resource["urn"] in by_parent:  # a component (or any resource with children)
                lines.append(f"{indent}subgraph cluster_{ids[resource['urn']]} {{")
                title = f"{resource['name']} ({resource['type']})"
                lines.append(f"{indent}  label={_dot_quote(title)};")
                lines.append(f'{indent}  style="rounded"; color="#5577aa";')
                if resource.get("custom"):
                    lines.append(f'{indent}  {ids[resource["urn"]]} [label="{label}"];')
                emit(resource["urn"], indent + "  ")
                lines.append(f"{indent}}}")
            elif resource.get("custom"):
                lines.append(f'{indent}{ids[resource["urn"]]} [label="{label}"];')

    emit(None, "  ")
    custom = {r["urn"] for r in resources if r.get("custom")}
    for resource in resources:
        if resource["urn"] not in custom:
            continue
        for target in resource.get("dependencies", []):
            if target in custom:
                lines.append(f"  {ids[resource['urn']]} -> {ids[target]} [style=dashed];")
    lines.append("}")
    return "\n".join(lines) + "\n"
