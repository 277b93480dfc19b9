"""The names `bootstrap`/`verify` use are the names the Pulumi program declares (run offline)."""

from __future__ import annotations

import pytest

from infra.config import load_stack_file
from platform_cli.aws_names import expected_names
from platform_cli.offline import Declared, run_stack


def _inputs(declared: Declared, type_: str, key: str) -> list[str]:
    return sorted(str(r.inputs[key]) for r in declared.of_type(type_))


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_platform_names_match_what_the_program_declares(env: str) -> None:
    cfg = load_stack_file(env)
    names = expected_names(cfg)
    declared = run_stack(cfg)

    assert _inputs(declared, "aws:eks/cluster:Cluster", "name") == [names.eks_cluster]
    assert _inputs(declared, "aws:msk/cluster:Cluster", "clusterName") == [names.msk_cluster]
    assert _inputs(declared, "aws:rds/instance:Instance", "identifier") == [names.rds_instance]
    owned = _inputs(declared, "aws:ecr/repository:Repository", "name")
    # Only the stack that owns the shared registry declares it; the others pull from it.
    assert owned == (sorted(names.ecr_repositories) if cfg.registry.create else [])


def test_localstack_stack_declares_none_of_the_services_verify_skips() -> None:
    cfg = load_stack_file("localstack")
    names = expected_names(cfg)
    declared = run_stack(cfg)

    assert not (names.cluster_on_eks or names.kafka_on_msk or names.database_on_rds)
    assert not names.registry_on_ecr
    for type_ in (
        "aws:eks/cluster:Cluster",
        "aws:msk/cluster:Cluster",
        "aws:rds/instance:Instance",
        "aws:ecr/repository:Repository",
    ):
        assert declared.of_type(type_) == [], type_
