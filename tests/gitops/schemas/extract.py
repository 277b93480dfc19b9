"""Extract, from the exact pinned releases, the CRD schemas the gitops tests validate against.

    PYTHONPATH=. python tests/gitops/schemas/extract.py [--git-dir OWNER/NAME=GIT_DIR]... [--check]

For each entry of `SOURCES` the release tag is derived from the pin in infra/platform/charts.py
(`tag_format.format(version=<pinned chart version>)`), the CRD file is read at that tag with
`git show <tag>:<path>`, and the `openAPIV3Schema` of the version the objects use
(`apiVersion`'s version, which must be served) is written, unedited, as
`<group>_<version>_<kind>.json` (sorted keys, one-space indent: a refresh is a readable diff).
`sources.json` records, per file, the repository, tag, commit, path, the sha256 of the upstream
CRD file and of the written schema, and the edits made (none).

Repositories are read from a bare clone given with `--git-dir` or, without one, fetched from
GitHub (`git fetch --depth 1` of the tag into a temporary directory). `--check` writes nothing
and exits 1 if a committed schema or sources.json differs from what the pinned tags produce.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.platform import charts

HERE = Path(__file__).resolve().parent
SOURCES_JSON = HERE / "sources.json"


@dataclass(frozen=True)
class CrdSource:
    """Where one kind's CRD lives upstream, relative to a chart pin.

    Attributes:
        api_version: `group/version` the platform's objects use.
        kind: the custom resource kind.
        chart: the pinned chart (infra/platform/charts.py) that installs the CRD.
        repository: `owner/name` of the public GitHub repository holding the CRD file.
        tag_format: the repository's release tag for a chart version, `{version}` = the pin.
        path: the CRD file inside the repository at that tag.
        why: why this repository/tag/path is the one the chart release installs.
    """

    api_version: str
    kind: str
    chart: charts.ChartSpec
    repository: str
    tag_format: str
    path: str
    why: str

    @property
    def file_name(self) -> str:
        group, version = self.api_version.split("/")
        return f"{group}_{version}_{self.kind.lower()}.json"

    @property
    def tag(self) -> str:
        return release_tag(self.tag_format, self.chart.version)


def release_tag(tag_format: str, version: str) -> str:
    """The repository's tag for a chart pin. `{minor}`/`{patch}` serve repositories whose tags
    share only those with the chart (the load balancer controller's chart 1.13.4 is v2.13.4)."""
    major, minor, patch = version.split(".")
    return tag_format.format(version=version, major=major, minor=minor, patch=patch)


_ARGO_WHY = (
    "argo-helm's chart release tag; the chart installs its own templates/crds/ "
    "(appVersion v3.0.0 at that tag)"
)
_KEDA_WHY = (
    "kedacore/charts' release tag for chart 2.17.2 (Chart.yaml version and appVersion 2.17.2); "
    "the chart installs its own templates/crds/"
)
_KPS_WHY = (
    "the chart release tag; kube-prometheus-stack installs the CRDs of its bundled `crds` "
    "subchart (annotation operator.prometheus.io/version 0.84.1, the chart's appVersion v0.84.1)"
)
_ESO_WHY = (
    "the chart release tag helm-chart-0.19.2 (Chart.yaml version/appVersion 0.19.2; the operator "
    "tag v0.19.2 is its parent commit, with the same CRD files); the chart's templates/crds/ "
    "are generated at packaging time by splitting deploy/crds/bundle.yaml "
    "(hack/helm.generate.sh), so that file is the chart's CRD source (its v1 schemas equal "
    "config/crds/bases/)"
)
_STRIMZI_WHY = (
    "Strimzi releases the operator and the strimzi-kafka-operator chart together under tag "
    "0.45.0; helm-charts/helm3/strimzi-kafka-operator/ at that tag is the released chart copy "
    "(values.yaml defaultImageTag 0.45.0); its crds/ declare the same versions and schemas as "
    "install/cluster-operator/ (only labels and indentation differ)"
)
_ALB_WHY = (
    "the controller repository releases chart 1.13.4 as controller v2.13.4 (Chart.yaml at tag "
    "v2.13.4: version 1.13.4, appVersion v2.13.4); the chart installs its crds/crds.yaml"
)
_CNPG_WHY = (
    "cloudnative-pg/charts' chart release tag (Chart.yaml version 0.23.0, appVersion 1.25.0); "
    "the chart installs templates/crds/crds.yaml"
)


@dataclass(frozen=True)
class _Upstream:
    """One chart's CRD repository: what every `CrdSource` from it shares."""

    chart: charts.ChartSpec
    repository: str
    tag_format: str
    why: str

    def crds(self, api_version: str, **path_by_kind: str) -> tuple[CrdSource, ...]:
        return tuple(
            CrdSource(
                api_version, kind, self.chart, self.repository, self.tag_format, path, self.why
            )
            for kind, path in path_by_kind.items()
        )


_ARGO = _Upstream(charts.ARGO_CD, "argoproj/argo-helm", "argo-cd-{version}", _ARGO_WHY)
_KEDA = _Upstream(charts.KEDA, "kedacore/charts", "v{version}", _KEDA_WHY)
_KPS = _Upstream(
    charts.KUBE_PROMETHEUS_STACK,
    "prometheus-community/helm-charts",
    "kube-prometheus-stack-{version}",
    _KPS_WHY,
)
_ESO = _Upstream(
    charts.EXTERNAL_SECRETS, "external-secrets/external-secrets", "helm-chart-{version}", _ESO_WHY
)
_STRIMZI = _Upstream(charts.STRIMZI, "strimzi/strimzi-kafka-operator", "{version}", _STRIMZI_WHY)
_CNPG = _Upstream(
    charts.CLOUDNATIVE_PG, "cloudnative-pg/charts", "cloudnative-pg-v{version}", _CNPG_WHY
)
_ALB = _Upstream(
    charts.AWS_LOAD_BALANCER_CONTROLLER,
    "kubernetes-sigs/aws-load-balancer-controller",
    "v2.{minor}.{patch}",
    _ALB_WHY,
)
_KPS_CRDS = "charts/kube-prometheus-stack/charts/crds/crds"
_STRIMZI_CRDS = "helm-charts/helm3/strimzi-kafka-operator/crds"

SOURCES: tuple[CrdSource, ...] = (
    *_ARGO.crds(
        "argoproj.io/v1alpha1",
        Application="charts/argo-cd/templates/crds/crd-application.yaml",
        AppProject="charts/argo-cd/templates/crds/crd-project.yaml",
    ),
    *_KEDA.crds(
        "keda.sh/v1alpha1",
        ScaledObject="keda/templates/crds/crd-scaledobjects.yaml",
        TriggerAuthentication="keda/templates/crds/crd-triggerauthentications.yaml",
    ),
    *_KPS.crds(
        "monitoring.coreos.com/v1",
        ServiceMonitor=f"{_KPS_CRDS}/crd-servicemonitors.yaml",
        PrometheusRule=f"{_KPS_CRDS}/crd-prometheusrules.yaml",
    ),
    *_ESO.crds(
        "external-secrets.io/v1",
        ExternalSecret="deploy/crds/bundle.yaml",
        ClusterSecretStore="deploy/crds/bundle.yaml",
    ),
    *_STRIMZI.crds(
        "kafka.strimzi.io/v1beta2",
        Kafka=f"{_STRIMZI_CRDS}/040-Crd-kafka.yaml",
        KafkaNodePool=f"{_STRIMZI_CRDS}/04A-Crd-kafkanodepool.yaml",
    ),
    *_CNPG.crds("postgresql.cnpg.io/v1", Cluster="charts/cloudnative-pg/templates/crds/crds.yaml"),
    *_ALB.crds(
        "elbv2.k8s.aws/v1beta1",
        IngressClassParams="helm/aws-load-balancer-controller/crds/crds.yaml",
    ),
)

# A line holding only Helm directives (`{{- if .Values.crds.install }}`, `{{- end }}`): chart
# CRD templates wrap the document in them and template its metadata. `untemplate` drops them
# where they cannot touch the schema (before the top-level `spec:`, or at column 0, wrapping a
# whole document) and refuses them anywhere else; inline values (`name: {{ .Values.x }}`)
# become a placeholder that `crd_schema` refuses to find inside the schema.
_DIRECTIVE_LINE = re.compile(r"^\s*(\{\{-?[^}]*-?\}\}\s*)+$")
_INLINE = re.compile(r"\{\{.*?\}\}")
PLACEHOLDER = "HELM-TEMPLATED-VALUE"


def untemplate(text: str) -> str:
    lines = []
    in_spec = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("---"):
            in_spec = False
        elif line.rstrip() == "spec:":
            in_spec = True
        if _DIRECTIVE_LINE.match(line):
            if in_spec and line[:1].isspace():
                raise ValueError(f"line {number}: Helm directive inside a CRD spec: {line.strip()}")
            continue
        lines.append(_INLINE.sub(PLACEHOLDER, line))
    return "\n".join(lines) + "\n"


def crd_schema(
    text: str, api_version: str, kind: str
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(openAPIV3Schema, version entry, scope) of `kind` at `api_version` in a CRD file."""
    group, version = api_version.split("/")
    crds = [
        doc
        for doc in yaml.safe_load_all(untemplate(text))
        if isinstance(doc, dict)
        and doc.get("kind") == "CustomResourceDefinition"
        and doc["spec"]["group"] == group
        and doc["spec"]["names"]["kind"] == kind
    ]
    if len(crds) != 1:
        raise ValueError(f"{api_version} {kind}: expected one CRD in the file, found {len(crds)}")
    entries = [v for v in crds[0]["spec"]["versions"] if v["name"] == version]
    if not entries:
        names = [v["name"] for v in crds[0]["spec"]["versions"]]
        raise ValueError(f"{api_version} {kind}: no version {version!r}; the CRD has {names}")
    (entry,) = entries
    if not entry.get("served"):
        raise ValueError(f"{api_version} {kind}: version {version!r} is not served")
    schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
    if PLACEHOLDER in json.dumps(schema):
        raise ValueError(f"{api_version} {kind}: Helm template text inside the schema")
    return schema, entry, crds[0]["spec"]["scope"]


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Repositories:
    """`git show` access to tags of the upstream repositories (given clones, or fetched)."""

    def __init__(self, git_dirs: dict[str, str], scratch: Path) -> None:
        self.git_dirs = dict(git_dirs)
        self.scratch = scratch

    def _git(self, repository: str, *args: str) -> bytes:
        return subprocess.run(
            ["git", f"--git-dir={self.git_dirs[repository]}", *args],
            check=True,
            capture_output=True,
        ).stdout

    def commit(self, repository: str, tag: str) -> str:
        """The commit `tag` names; a repository without a given clone is fetched (tag only)."""
        if repository not in self.git_dirs:
            git_dir = self.scratch / repository.replace("/", "+")
            subprocess.run(["git", "init", "--bare", "-q", str(git_dir)], check=True)
            self.git_dirs[repository] = str(git_dir)
            url = f"https://github.com/{repository}"
            ref = f"+refs/tags/{tag}:refs/tags/{tag}"
            self._git(repository, "fetch", "-q", "--depth=1", url, ref)
        out = self._git(repository, "rev-parse", "--verify", f"refs/tags/{tag}^{{commit}}")
        return out.decode().strip()

    def show(self, repository: str, commit: str, path: str) -> bytes:
        return self._git(repository, "show", f"{commit}:{path}")


def extract(repos: Repositories) -> tuple[dict[str, str], dict[str, Any]]:
    """{file name: schema text} and the sources.json document for every entry of SOURCES."""
    files: dict[str, str] = {}
    recorded: dict[str, Any] = {}
    for source in SOURCES:
        commit = repos.commit(source.repository, source.tag)
        raw = repos.show(source.repository, commit, source.path)
        schema, entry, scope = crd_schema(raw.decode(), source.api_version, source.kind)
        text = dumps(schema)
        files[source.file_name] = text
        recorded[source.file_name] = {
            "apiVersion": source.api_version,
            "kind": source.kind,
            "chart": source.chart.chart,
            "chart_version": source.chart.version,
            "repository": source.repository,
            "tag_format": source.tag_format,
            "tag": source.tag,
            "commit": commit,
            "path": source.path,
            "why": source.why,
            "scope": scope,
            "served": bool(entry.get("served")),
            "storage": bool(entry.get("storage")),
            "upstream_sha256": sha256(raw),
            "sha256": sha256(text.encode()),
            "edits": [],
        }
    document = {
        "_comment": (
            "Provenance of every CRD schema in this folder, written by extract.py; see README.md. "
            "tests/gitops/test_schema_sources.py checks it against infra/platform/charts.py and "
            "the files' hashes."
        ),
        "schemas": dict(sorted(recorded.items())),
    }
    return files, document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--git-dir",
        action="append",
        default=[],
        metavar="OWNER/NAME=GIT_DIR",
        help="read this repository from a local (bare) clone instead of fetching it",
    )
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    git_dirs = dict(item.split("=", 1) for item in args.git_dir)
    with tempfile.TemporaryDirectory() as scratch:
        files, document = extract(Repositories(git_dirs, Path(scratch)))
    sources_text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    wanted = {**files, SOURCES_JSON.name: sources_text}
    if args.check:
        stale = [
            name
            for name, text in wanted.items()
            if not (HERE / name).is_file() or (HERE / name).read_text() != text
        ]
        for name in stale:
            print(f"stale: {name}", file=sys.stderr)
        return 1 if stale else 0
    for old in HERE.glob("*.json"):
        if old.name not in wanted:
            old.unlink()
    for name, text in wanted.items():
        (HERE / name).write_text(text)
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
