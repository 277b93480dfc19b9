"""Run the Pulumi program offline, under the SDK's mock monitor, and record what it declares.

One mechanism serves the test suite and `platform plan`: no Pulumi CLI, no cloud, no cluster.
The recording monitor keeps, for every registered resource, its type, name, parent, explicit
dependencies, provider, `protect` flag and inputs, so tests can assert properties and ordering
and the plan command can print an inventory.

Mocked outputs: the mocks echo the inputs back and add deterministic ids, ARNs and the few
attributes the program reads (endpoints, certificate data, AZ names). Nothing here depends on the
time of day or on randomness, so an inventory is byte-identical across runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks

# The SDK's own way to run an awaitable to completion outside its engine loop. It is private
# (no public equivalent exists for running a program under mocks and reading its outputs in the
# same call), so it is imported here only, and used only through `_now` below: a change in a
# new SDK release breaks this one function, not the suite.
from pulumi.runtime.sync_await import _sync_await

from infra.config import PROJECT, PlatformConfig
from infra.contracts import MSK_IAM_PORT, POSTGRES_PORT

FAKE_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class DeclaredResource:
    """One resource as the program declared it (custom resources and components alike)."""

    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    provider: str | None
    protect: bool
    dependencies: tuple[str, ...]
    inputs: dict[str, Any]
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class Declared:
    """Everything one program run declared, in registration order, plus the stack outputs."""

    resources: list[DeclaredResource]
    outputs: dict[str, Any]
    component_outputs: dict[str, dict[str, Any]]

    def of_type(self, type_: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name_suffix: str = "") -> DeclaredResource:
        found = [r for r in self.of_type(type_) if r.name.endswith(name_suffix)]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise AssertionError(f"expected one {type_} ending {name_suffix!r}, found {names}")
        return found[0]

    def by_urn(self, urn: str) -> DeclaredResource:
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise KeyError(urn)

    def by_name(self, name: str) -> DeclaredResource:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise AssertionError(f"expected one resource named {name!r}, found {len(found)}")
        return found[0]

    def ancestors(self, resource: DeclaredResource) -> Iterator[DeclaredResource]:
        parent = resource.parent
        while parent:
            try:
                node = self.by_urn(parent)
            except KeyError:
                return
            yield node
            parent = node.parent

    def depends_on(self, resource: DeclaredResource, target: DeclaredResource) -> bool:
        """True when `resource` (or a parent component of it) waits for `target`.

        Pulumi waits for a dependency's whole subtree when the dependency is a component, so an
        edge to any ancestor of `target` counts as well.
        """
        targets = {target.urn, *(a.urn for a in self.ancestors(target))}
        seen: set[str] = set()
        frontier = [resource, *self.ancestors(resource)]
        while frontier:
            node = frontier.pop()
            if node.urn in seen:
                continue
            seen.add(node.urn)
            edges = set(node.dependencies)
            for deps in node.property_dependencies.values():
                edges.update(deps)
            if edges & targets:
                return True
            for urn in edges:
                try:
                    frontier.append(self.by_urn(urn))
                except KeyError:
                    continue
        return False

    def counts_by_type(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for resource in self.resources:
            counts[resource.type] = counts.get(resource.type, 0) + 1
        return dict(sorted(counts.items()))


# ARN paths AWS uses where the program parses them (e.g. the account of an EKS cluster ARN).
_ARN_PATHS: dict[str, str] = {"aws:eks/cluster:Cluster": "cluster/"}


def _fake_arn(type_: str, name: str, region: str) -> str:
    service = type_.split(":")[1].split("/")[0] if ":" in type_ else "x"
    return f"arn:aws:{service}:{region}:{FAKE_ACCOUNT}:{_ARN_PATHS.get(type_, '')}{name}"


class PlatformMocks(pulumi_mocks.Mocks):
    """Echo inputs, add stable ids/ARNs and the attributes the program reads back."""

    def __init__(self, region: str) -> None:
        self.region = region

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict]:
        state = dict(args.inputs)
        digest = hashlib.sha256(f"{args.typ}/{args.name}".encode()).hexdigest()[:12]
        resource_id = f"{args.name}-{digest}"
        physical = str(args.inputs.get("name") or args.name)
        state.setdefault(
            "arn",
            _fake_arn(args.typ, physical if args.typ in _ARN_PATHS else args.name, self.region),
        )
        state.setdefault("id", resource_id)
        # Auto-named resources get their physical name from the provider; echo the logical name
        # so references such as `parameter_group.name` resolve (and keep their dependency).
        state.setdefault("name", args.name)
        extra = _EXTRA_OUTPUTS.get(args.typ)
        if extra:
            for key, value in extra(args.name, self.region).items():
                state.setdefault(key, value)
        return resource_id, state

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:  # type: ignore[override]
        # Returning a bare dict (not a tuple) means "no check failures" to the mock monitor.
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{suffix}" for suffix in "abc"]
            return {"names": names, "zoneIds": [f"use1-az{i}" for i in (1, 2, 3)]}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": FAKE_ACCOUNT, "arn": f"arn:aws:iam::{FAKE_ACCOUNT}:user/ci"}
        if args.token == "aws:iam/getSessionContext:getSessionContext":
            issuer = f"arn:aws:iam::{FAKE_ACCOUNT}:role/platform-deployer"
            return {"arn": args.args.get("arn", ""), "issuerArn": issuer, "issuerName": "ci"}
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com"}
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region}
        return {}


_EXTRA_OUTPUTS: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "aws:eks/cluster:Cluster": lambda name, region: {
        "endpoint": f"https://{name}.gr7.{region}.eks.amazonaws.com",
        "certificateAuthority": {"data": "Y2VydGlmaWNhdGU="},
        "identities": [
            {"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{name}"}]}
        ],
        "clusterId": name,
    },
    "aws:msk/cluster:Cluster": lambda name, region: {
        "bootstrapBrokersSaslIam": ",".join(
            f"b-{i}.{name}.kafka.{region}.amazonaws.com:{MSK_IAM_PORT}" for i in (1, 2, 3)
        ),
        "clusterUuid": f"{name}-uuid",
        "currentVersion": "K3AEGXETSR30VB",
    },
    "aws:rds/instance:Instance": lambda name, region: {
        "address": f"{name}.abcdefghij.{region}.rds.amazonaws.com",
        "endpoint": f"{name}.abcdefghij.{region}.rds.amazonaws.com:{POSTGRES_PORT}",
        "port": POSTGRES_PORT,
        "masterUserSecrets": [
            {
                "secretArn": f"arn:aws:secretsmanager:{region}:{FAKE_ACCOUNT}:secret:rds!{name}",
                "secretStatus": "active",
                "kmsKeyId": "mock-key",
            }
        ],
    },
    "aws:ecr/repository:Repository": lambda name, region: {
        "repositoryUrl": f"{FAKE_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{name}",
    },
    "aws:msk/configuration:Configuration": lambda name, region: {"latestRevision": 1},
    "aws:ec2/launchTemplate:LaunchTemplate": lambda name, region: {"latestVersion": 1},
    "aws:s3/bucket:Bucket": lambda name, region: {"bucket": name},
    "aws:s3/bucketV2:BucketV2": lambda name, region: {"bucket": name},
}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that also keeps parent, dependencies, provider and protect of each resource."""

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.declared: list[DeclaredResource] = []
        self.component_outputs: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response

        inputs = struct_to_plain(request.object)
        self.declared.append(
            DeclaredResource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                # The root Stack is implicit; a top-level resource reports no parent.
                parent=None if _is_stack_urn(request.parent) else request.parent,
                custom=bool(request.custom),
                provider=request.provider or None,
                protect=bool(request.protect),
                dependencies=tuple(request.dependencies),
                inputs=inputs,
                property_dependencies={
                    key: tuple(value.urns) for key, value in request.propertyDependencies.items()
                },
            )
        )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        self.component_outputs[request.urn] = struct_to_plain(request.outputs)
        return super().RegisterResourceOutputs(request)


def _is_stack_urn(urn: str) -> bool:
    return not urn or "::pulumi:pulumi:Stack::" in urn


# Pulumi's wire format marks special values with this key; see pulumi/sdk `rpc.py`.
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SIG_SECRET = "1b47061264138c4ac30d75fd1eb44270"
_SIG_RESOURCE = "5cf8f73096256a8f31e491e813e4eb8e"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def struct_to_plain(struct: Any) -> Any:
    """A protobuf Struct of properties as plain data, without touching the Pulumi runtime.

    `rpc.deserialize_properties` would rebuild resource references as live Resource objects on
    the monitor's thread (and fail on a foreign event loop), and it would unwrap secrets. Here a
    resource reference becomes its URN and a secret becomes SECRET_MARKER, so no secret value can
    reach a test assertion, an inventory or a snapshot.
    """
    from google.protobuf.json_format import MessageToDict

    return _plain_value(MessageToDict(struct))


def _plain_value(value: Any) -> Any:
    if isinstance(value, dict):
        signature = value.get(_SIG_KEY)
        if signature == _SIG_SECRET:
            return SECRET_MARKER
        if signature == _SIG_RESOURCE:
            return value.get("urn", "")
        return {key: _plain_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_value(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # Struct stores every number as a double
    if value == _UNKNOWN:
        return "[unknown]"
    return value


def run_program(
    program: Callable[[], Any],
    *,
    stack: str,
    region: str,
    config: dict[str, str] | None = None,
) -> Declared:
    """Run `program` under the recording mock monitor and return everything it declared.

    `program` is called inside the Pulumi runtime; its return value is ignored (stack outputs
    are collected through `pulumi.export`).
    """
    _ensure_current_loop()
    monitor = RecordingMonitor(PlatformMocks(region))
    pulumi.runtime.set_all_config(config or {}, [])
    pulumi_mocks.set_mocks(
        PlatformMocks(region), project=PROJECT, stack=stack, preview=False, monitor=monitor
    )
    exported: dict[str, Any] = {}
    original_export = pulumi.export

    def _capture(name: str, value: Any) -> None:
        exported[name] = value
        original_export(name, value)

    pulumi.export = _capture
    try:
        pulumi.runtime.settings.SETTINGS.rpc_manager.clear()
        _now(pulumi.runtime.stack.run_pulumi_func(program))
        resolved = {key: _resolve(value) for key, value in exported.items()}
    finally:
        pulumi.export = original_export
    return Declared(
        resources=list(monitor.declared),
        outputs=resolved,
        component_outputs=dict(monitor.component_outputs),
    )


SECRET_MARKER = "[secret]"


def _ensure_current_loop() -> None:
    """The SDK's mocks and `_sync_await` run on the thread's current loop (get_event_loop).
    A caller that ran `asyncio.run()` earlier in this thread left none ("no current event
    loop"): give the thread a new one instead of failing."""
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def _now(awaitable: Any) -> Any:
    """Run a Pulumi awaitable to completion (see the import's comment)."""
    return _sync_await(awaitable)


def _resolve(value: Any) -> Any:
    """Resolve an exported value; secrets become a marker so they never reach an inventory."""
    if isinstance(value, pulumi.Output):
        is_secret = _now(value.is_secret())
        if is_secret:
            return SECRET_MARKER
        return _resolve(_now(value.future()))
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_resolve(v) for v in value]
    return value


def run_stack(cfg: PlatformConfig) -> Declared:
    """Run the whole platform program for one typed stack config."""
    from infra.program import build

    return run_program(lambda: build(cfg), stack=cfg.stack, region=cfg.region)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
