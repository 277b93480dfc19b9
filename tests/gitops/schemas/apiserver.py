"""What the Kubernetes API server does when a custom resource is created, offline.

There is no API server here, so this re-does, in order, what k8s.io/apiextensions-apiserver does
with a create request for a CRD-backed object (`pkg/registry/customresource/strategy.go`
`Validate`, and the structural-schema decoding before it):

1. TypeMeta: `apiVersion`/`kind` must be the CRD's.
2. ObjectMeta (apimachinery `ValidateObjectMeta`): the name is a DNS-1123 subdomain, the
   namespace a DNS-1123 label and present only on namespaced kinds, label keys/values,
   annotation keys and finalizers are qualified names; unknown metadata fields are dropped.
3. Pruning (`schema/pruning`): fields the schema does not declare are dropped, except below
   `x-kubernetes-preserve-unknown-fields`. Whether a dropped field fails the request is the
   client's `fieldValidation`: `Strict` refuses it (kubectl's default, and Argo CD's sync unless
   `Validate=false`: gitops-engine `pkg/utils/kube/resource_ops.go`), `Warn` keeps the request
   and drops the field (the server default, and what the Pulumi provider sends with its
   server-side-apply patch: pulumi-kubernetes `provider/pkg/await/await.go`).
4. Non-nullable `null`s without a default are dropped, then defaults are applied
   (`schema/defaulting`), so validation sees the object as it would be stored.
5. The OpenAPI v3 value validation of the schema (kube-openapi `validate`): type (with
   `nullable`; an integral float is an integer), required, enum, pattern (RE2, as in Go),
   min/max, lengths, item and property counts, anyOf/oneOf/allOf/not, and the string formats
   the server checks (`validation/formats.go`; `int32`/`int64` are not range-checked there).
6. `x-kubernetes-list-type: set|map`: no duplicate items / map keys (`schema/listtype`).
7. `x-kubernetes-validations` (CEL) rules, evaluated with cel-python, when 1-6 found nothing
   (the server skips CEL after blocking errors). Transition rules (`oldSelf`) only run on update
   and are skipped.

Not modelled: admission webhooks (e.g. External Secrets' validating webhook), update ratcheting,
CEL cost limits and the Kubernetes CEL extension libraries (a rule that uses one fails here
loudly with "cannot evaluate", never silently passes).

ObjectMeta's rules are re-implemented here because no Python library carries apimachinery's
validation; the regular expressions are apimachinery's (`pkg/util/validation/validation.go`).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal

import celpy
import jsonschema
import re2
from jsonschema import Draft4Validator, validators

FieldValidation = Literal["Strict", "Warn"]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_OLD_SELF = re.compile(r"\boldSelf\b")
_TOTAL_ANNOTATION_BYTES = 256 * 1024
_OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})

# Formats the server checks on strings (formats.go) that the CRDs in this folder use, and the
# ones it accepts without a check. A schema refresh that brings another format fails
# tests/gitops/test_schemas.py until it is added to one of the two.
STRING_FORMAT_CHECKS = {
    "byte": "base64-encoded data",
    "date-time": "an RFC 3339 date-time",
}
UNCHECKED_FORMATS = frozenset({"int32", "int64", "float", "double", "password"})


@dataclass(frozen=True)
class Admission:
    """The API server's answer to a create: what it refuses and what it silently drops.

    Attributes:
        refused: `<field path>: <reason>` for every reason the request fails.
        pruned: paths of unknown fields the server drops (refused too under `Strict`).
        stored: the object as it would be stored (pruned and defaulted).
    """

    refused: tuple[str, ...]
    pruned: tuple[str, ...]
    stored: dict[str, Any]


def _path(parts: tuple[str | int, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "<root>"


def _child(schema: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """The schema of an object's field: its property, else `additionalProperties` (a map)."""
    if schema is None:
        return None
    if key in schema.get("properties", {}):
        return schema["properties"][key]  # type: ignore[no-any-return]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _declares(schema: dict[str, Any], key: str) -> bool:
    return key in schema.get("properties", {}) or isinstance(
        schema.get("additionalProperties"), dict
    )


def prune(
    value: Any, schema: dict[str, Any] | None, at: tuple[str | int, ...] = ()
) -> Iterator[str]:
    """Drop undeclared fields in place (pruning/algorithm.go `prune`); yields each dropped path.

    At the root (and in `x-kubernetes-embedded-resource` objects) apiVersion, kind and metadata
    are left alone: ObjectMeta has its own rules (`object_meta_errors`).
    """
    if schema is not None and schema.get("x-kubernetes-preserve-unknown-fields"):
        yield from _prune_declared_only(value, schema, at)
        return
    embedded = schema is not None and (not at or schema.get("x-kubernetes-embedded-resource"))
    if isinstance(value, dict):
        for key in list(value):
            if embedded and key in _META_FIELDS:
                continue
            if schema is not None and _declares(schema, key):
                yield from prune(value[key], _child(schema, key), (*at, key))
            else:
                del value[key]
                yield _path((*at, key))
    elif isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        for index, item in enumerate(value):
            yield from prune(item, items, (*at, index))


def _prune_declared_only(
    value: Any, schema: dict[str, Any] | None, at: tuple[str | int, ...]
) -> Iterator[str]:
    """Below preserve-unknown-fields (`skipPrune`): unknown fields stay, declared ones are
    pruned as usual, and list items keep the preserving behaviour."""
    if schema is None:
        return
    embedded = bool(schema.get("x-kubernetes-embedded-resource"))
    if isinstance(value, dict):
        for key in list(value):
            if embedded and key in _META_FIELDS:
                continue
            if _declares(schema, key):
                yield from prune(value[key], _child(schema, key), (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _prune_declared_only(item, schema.get("items"), (*at, index))


def prune_nulls_and_default(value: Any, schema: dict[str, Any] | None) -> None:
    """Drop non-nullable nulls that have no default, then apply defaults (defaulting/*.go)."""
    if schema is None:
        return
    if isinstance(value, dict):
        for key in list(value):
            sub = _child(schema, key)
            if value[key] is None and sub is not None and not sub.get("nullable"):
                if "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                else:
                    del value[key]
        for key, sub in schema.get("properties", {}).items():
            if "default" in sub and key not in value:
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            prune_nulls_and_default(item, _child(schema, key))
    elif isinstance(value, list):
        items = schema.get("items")
        for index, item in enumerate(value):
            if item is None and items and not items.get("nullable") and "default" in items:
                value[index] = copy.deepcopy(items["default"])
            prune_nulls_and_default(value[index], items)


def _nodes(
    value: Any, schema: dict[str, Any] | None, at: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Any, dict[str, Any]]]:
    """Every (path, value, schema) pair of the object, following the structural schema."""
    if schema is None:
        return
    yield at, value, schema
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(item, _child(schema, key), (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nodes(item, schema.get("items"), (*at, index))


def list_type_errors(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Duplicates in `x-kubernetes-list-type: set` lists and in map lists' keys."""
    errors = []
    for at, value, node in _nodes(obj, schema):
        kind = node.get("x-kubernetes-list-type")
        if not isinstance(value, list) or kind not in ("set", "map"):
            continue
        keys = node.get("x-kubernetes-list-map-keys", []) if kind == "map" else []
        seen: set[str] = set()
        for index, item in enumerate(value):
            if kind == "set":
                ident = json.dumps(item, sort_keys=True)
            elif isinstance(item, dict):
                ident = json.dumps([item.get(k) for k in keys])
            else:
                continue
            if ident in seen:
                what = "value" if kind == "set" else f"map key(s) {keys} value"
                errors.append(f"{_path((*at, index))}: Duplicate {what}: {ident}")
            seen.add(ident)
    return errors


def _openapi_type(validator: Any, types: Any, instance: Any, schema: dict[str, Any]) -> Any:
    if instance is None and schema.get("nullable"):
        return
    yield from Draft4Validator.VALIDATORS["type"](validator, types, instance, schema)


def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    # The server matches with Go's regexp (RE2); Python's `re` differs (e.g. `$` also matches
    # before a trailing newline), so RE2 itself decides.
    if isinstance(instance, str) and not re2.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _is_integer(checker: Any, instance: Any) -> bool:
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and instance.is_integer())


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("byte", raises=(binascii.Error, ValueError))
def _is_base64(instance: object) -> bool:
    if isinstance(instance, str):
        base64.b64decode(instance, validate=True)
    return True


@_FORMATS.checks("date-time")
def _is_rfc3339(instance: object) -> bool:
    return not isinstance(instance, str) or bool(_RFC3339.match(instance))


_OpenApiValidator = validators.extend(
    Draft4Validator,
    validators={"type": _openapi_type, "pattern": _re2_pattern},
    type_checker=Draft4Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def _qualified_name_errors(value: str) -> list[str]:
    prefix, _, name = value.rpartition("/")
    errors = []
    if value.count("/") > 1:
        return ["a qualified name must be [prefix/]name"]
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        errors.append("prefix part must be a lowercase RFC 1123 subdomain")
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        errors.append(
            "name part must be at most 63 characters of alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )
    return errors


def object_meta_errors(metadata: Any, *, namespaced: bool) -> tuple[list[str], list[str]]:
    """(errors, pruned paths) of `metadata` on create (ValidateObjectMeta, NameIsDNSSubdomain)."""
    if not isinstance(metadata, dict):
        return ["metadata: Invalid value: must be an object"], []
    errors: list[str] = []
    pruned = [f"metadata.{key}" for key in metadata if key not in _OBJECT_META_FIELDS]
    name = metadata.get("name")
    if not name and not metadata.get("generateName"):
        errors.append("metadata.name: Required value: name or generateName is required")
    elif name is not None and (
        not isinstance(name, str) or len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name)
    ):
        errors.append(
            f"metadata.name: Invalid value: {name!r}: must be a lowercase RFC 1123 subdomain"
        )
    namespace = metadata.get("namespace")
    if namespace and not namespaced:
        errors.append("metadata.namespace: Forbidden: not allowed on this type")
    elif namespace is not None and (
        not isinstance(namespace, str) or len(namespace) > 63 or not _DNS1123_LABEL.match(namespace)
    ):
        errors.append(
            f"metadata.namespace: Invalid value: {namespace!r}: must be an RFC 1123 label"
        )
    for key, value in (metadata.get("labels") or {}).items():
        errors += [
            f"metadata.labels: Invalid value: {key!r}: {e}" for e in _qualified_name_errors(key)
        ]
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            errors.append(f"metadata.labels[{key}]: Invalid value: {value!r}: not a label value")
    annotations = metadata.get("annotations") or {}
    for key, value in annotations.items():
        errors += [
            f"metadata.annotations: Invalid value: {key!r}: {e}"
            for e in _qualified_name_errors(key.lower())
        ]
        if not isinstance(value, str):
            errors.append(f"metadata.annotations[{key}]: Invalid value: must be a string")
    size = sum(len(k) + len(str(v)) for k, v in annotations.items())
    if size > _TOTAL_ANNOTATION_BYTES:
        errors.append(f"metadata.annotations: Too long: {size} bytes, at most 262144")
    for index, finalizer in enumerate(metadata.get("finalizers") or []):
        errors += [
            f"metadata.finalizers[{index}]: Invalid value: {finalizer!r}: {e}"
            for e in _qualified_name_errors(finalizer)
        ]
    return errors, pruned


class CelRuleError(Exception):
    """A rule this evaluator cannot run (e.g. a Kubernetes CEL extension function)."""


class CrdSchema:
    """The served version of one CRD: `admit(obj)` answers as the API server would."""

    def __init__(self, api_version: str, kind: str, schema: dict[str, Any], *, namespaced: bool):
        self.api_version = api_version
        self.kind = kind
        self.schema = schema
        self.namespaced = namespaced
        self._validator = _OpenApiValidator(schema, format_checker=_FORMATS)

    @classmethod
    def load(cls, path: Path, api_version: str, kind: str, *, namespaced: bool) -> CrdSchema:
        return cls(api_version, kind, json.loads(path.read_text()), namespaced=namespaced)

    @cached_property
    def _cel(self) -> celpy.Environment:
        return celpy.Environment()

    @cache  # noqa: B019 - a handful of long-lived schemas; programs are costly to compile
    def _program(self, expression: str) -> Any:
        return self._cel.program(self._cel.compile(expression))

    def formats(self) -> set[str]:
        """Every `format` the schema uses."""
        return {node["format"] for node in subschemas(self.schema) if "format" in node}

    def cel_errors(self, obj: dict[str, Any]) -> list[str]:
        errors = []
        for at, value, node in _nodes(obj, self.schema):
            for rule in node.get("x-kubernetes-validations", []):
                expression = rule["rule"]
                if rule.get("optionalOldSelf"):
                    raise CelRuleError(f"{_path(at)}: optionalOldSelf rule {expression!r}")
                if _OLD_SELF.search(expression):
                    continue  # a transition rule: evaluated on update only
                result = self._evaluate(expression, value, at)
                if result is not True:
                    where = _path(at) + rule.get("fieldPath", "")
                    message = rule.get("message") or f"failed rule: {expression}"
                    errors.append(f"{where}: Invalid value: {message}{result or ''}")
        return errors

    def _evaluate(self, expression: str, value: Any, at: tuple[str | int, ...]) -> bool | str:
        try:
            result = self._program(expression).evaluate({"self": celpy.json_to_cel(value)})
        except celpy.CELParseError as exc:
            raise CelRuleError(f"{_path(at)}: cannot evaluate {expression!r}: {exc}") from exc
        except celpy.CELEvalError as exc:  # e.g. a field the rule reads is absent
            return f" (rule error: {exc.args[0]})"
        if isinstance(result, celpy.CELEvalError):
            return f" (rule error: {result.args[0]})"
        return bool(result)

    def admit(self, obj: dict[str, Any], *, field_validation: FieldValidation) -> Admission:
        """Answer a create of `obj` sent with this `fieldValidation` directive."""
        stored = copy.deepcopy(obj)
        refused: list[str] = []
        for field, expected in (("apiVersion", self.api_version), ("kind", self.kind)):
            if stored.get(field) != expected:
                refused.append(f"{field}: Invalid value: {stored.get(field)!r}: must be {expected}")
        if refused:
            return Admission(tuple(refused), (), stored)
        meta_errors, pruned = object_meta_errors(stored.get("metadata"), namespaced=self.namespaced)
        for path in pruned:
            del stored["metadata"][path.split(".", 1)[1]]
        pruned += list(prune(stored, self.schema))
        if field_validation == "Strict":
            refused += [f"{path}: unknown field (fieldValidation=Strict)" for path in pruned]
        refused += meta_errors
        prune_nulls_and_default(stored, self.schema)
        refused += [
            f"{_path(tuple(e.absolute_path))}: {e.message}"
            for e in sorted(
                self._validator.iter_errors(stored), key=lambda e: list(map(str, e.absolute_path))
            )
        ]
        refused += list_type_errors(stored, self.schema)
        if not refused:
            refused += self.cel_errors(stored)
        return Admission(tuple(refused), tuple(sorted(pruned)), stored)


def subschemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every sub-schema: properties, items, maps and the anyOf/oneOf/allOf/not branches."""
    yield schema
    for sub in schema.get("properties", {}).values():
        yield from subschemas(sub)
    for keyword in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(keyword), dict):
            yield from subschemas(schema[keyword])
    for keyword in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(keyword, []):
            yield from subschemas(sub)
