"""Relations between rendered objects: clean on the real tree, and each check catches its bug."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from infra.gitops.catalog import Catalog
from platform_cli.gitops_validate import cross_check

Edit = Callable[[dict[str, Any]], None]


def _edited(files: dict[str, str], path: str, edit: Edit) -> dict[str, str]:
    obj = yaml.safe_load(files[path])
    edit(obj)
    return {**files, path: yaml.safe_dump(obj, sort_keys=True)}


def test_committed_tree_passes_every_cross_check(
    committed: dict[str, str], catalog: Catalog
) -> None:
    assert cross_check(committed, catalog.images) == []


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return container


CASES: list[tuple[str, Edit, str]] = [
    (
        "dev/notifier/service-notifier.yaml",
        lambda o: o["spec"]["selector"].update({"app.kubernetes.io/name": "audit"}),
        "must select exactly the pods of Deployment 'notifier'",
    ),
    (
        "prod/events-api/service-events-api.yaml",
        lambda o: o["spec"]["selector"].pop("app.kubernetes.io/component"),
        "also matches Job pods",
    ),
    (
        "staging/audit/service-monitor-audit.yaml",
        lambda o: o["spec"]["endpoints"][0].update({"port": "metrics"}),
        "endpoint port 'metrics' is not a port of the selected Service",
    ),
    (
        "prod/platform-config/network-policy-audit.yaml",
        lambda o: o["spec"].update({"egress": o["spec"]["egress"][:2]}),  # DNS and Kafka only
        "prod/audit/deployment-audit.yaml: egress to ports [443, 4318, 5432]",
    ),
    (
        "prod/platform-config/network-policy-notifier.yaml",
        lambda o: o["spec"]["egress"][1].pop("to"),
        "egress rule 1 allows [9098] to any destination",
    ),
    (
        "dev/platform-config/network-policy-audit.yaml",
        lambda o: o["spec"]["egress"].append({"ports": [{"protocol": "TCP", "port": 443}]}),
        "allows [443] to any destination",
    ),
    (
        "dev/audit.yaml",
        lambda o: o["spec"].update({"project": "default"}),
        "project 'default'; allowed: 'platform-apps'",
    ),
    (
        "localstack/platform-config/network-policy-notifier.yaml",
        lambda o: o["spec"]["egress"].pop(0),
        "no NetworkPolicy allows DNS",
    ),
    (
        "dev/platform-config/network-policy-default-deny.yaml",
        lambda o: o["spec"].update({"podSelector": {"matchLabels": {"x": "y"}}}),
        "dev: no default-deny NetworkPolicy",
    ),
    (
        "dev/platform-config/config-map-notifier-config.yaml",
        lambda o: o["data"].update({"DEAD_LETTER_TOPIC": "notifier.dead"}),
        "DEAD_LETTER_TOPIC='notifier.dead' is not created by the topics job",
    ),
    (
        "prod/audit/scaled-object-audit.yaml",
        lambda o: o["spec"].update({"maxReplicaCount": 12}),
        "maxReplicaCount 12 exceeds the 6 partitions of 'events'",
    ),
    (
        "staging/events-api/deployment-events-api.yaml",
        lambda o: _container(o).update({"env": [{"name": "DB_HOST", "value": "db.internal"}]}),
        "fact DB_HOST copied into the manifest",
    ),
]


@pytest.mark.parametrize(("path", "edit", "message"), CASES, ids=[c[0] for c in CASES])
def test_each_check_catches_its_bug(
    rendered: dict[str, str], catalog: Catalog, path: str, edit: Edit, message: str
) -> None:
    problems = cross_check(_edited(rendered, path, edit), catalog.images)
    assert any(message in p for p in problems), problems


def test_top_level_holds_only_applications(rendered: dict[str, str], catalog: Catalog) -> None:
    files = dict(rendered)
    files["dev/stray-deployment.yaml"] = rendered["dev/notifier/deployment-notifier.yaml"]
    problems = cross_check(files, catalog.images)
    assert "dev/stray-deployment.yaml: only ArgoCD Applications may sit at the top" in problems[0]


def test_prod_tag_equal_to_dev_needs_a_promotion(
    rendered: dict[str, str], catalog: Catalog
) -> None:
    not_promoted = dataclasses.replace(catalog.images, promoted={})
    problems = cross_check(rendered, not_promoted)
    assert any("prod/events-api: image tag '0.1.0' equals dev's but was not" in p for p in problems)
