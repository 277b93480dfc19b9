"""The rendered tree fits what the platform layer's GitOps bridge allows, and the bridge's own
ArgoCD objects are admitted by the same exact-pin CRD schemas (see test_schemas.py)."""

from __future__ import annotations

import pytest
import yaml

from infra.config import load_stack_file
from infra.contracts import APP_NAMESPACE, ARGOCD_NAMESPACE, ENVIRONMENTS
from infra.platform.gitops_bridge import (
    ROOT_APP_NAME,
    apps_project_spec,
    root_application_spec,
    root_project_spec,
)
from tests.gitops.test_schemas import schema_errors

APP_KEY = ("argoproj.io/v1alpha1", "Application")
PROJECT_KEY = ("argoproj.io/v1alpha1", "AppProject")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_bridge_objects_match_the_crd_schemas(env: str) -> None:
    cfg = load_stack_file(env)
    repo = cfg.gitops.repo_url
    meta = {"name": ROOT_APP_NAME, "namespace": ARGOCD_NAMESPACE}
    objects = [
        (PROJECT_KEY, apps_project_spec(repo)),
        (PROJECT_KEY, root_project_spec(repo)),
        (APP_KEY, root_application_spec(env, repo, cfg.gitops.target_revision)),
    ]
    for (api, kind), spec in objects:
        obj = {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}
        errors = schema_errors(obj)
        assert not errors, f"{env} {kind}:\n" + "\n".join(errors)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rendered_objects_fit_the_projects(rendered: dict[str, str], env: str) -> None:
    cfg = load_stack_file(env)
    apps_project = apps_project_spec(cfg.gitops.repo_url)
    root_project = root_project_spec(cfg.gitops.repo_url)
    allowed_root_kinds = {
        (k["group"], k["kind"]) for k in root_project["namespaceResourceWhitelist"]
    }
    blacklisted = {(k["group"], k["kind"]) for k in apps_project["namespaceResourceBlacklist"]}
    destinations = {(d["server"], d["namespace"]) for d in apps_project["destinations"]}
    for path, text in rendered.items():
        if not path.startswith(f"{env}/"):
            continue
        obj = yaml.safe_load(text)
        group = obj["apiVersion"].rpartition("/")[0]
        if path.count("/") == 1:  # synced by the root app under the root project
            assert (group, obj["kind"]) in allowed_root_kinds, path
            assert obj["metadata"]["namespace"] == ARGOCD_NAMESPACE, path
            spec = obj["spec"]
            assert spec["source"]["repoURL"] in apps_project["sourceRepos"], path
            dest = (spec["destination"]["server"], spec["destination"]["namespace"])
            assert dest in destinations, path
        else:  # synced by a child app under platform-apps: namespaced, in `apps`, not blacklisted
            assert obj["metadata"]["namespace"] == APP_NAMESPACE, path
            assert (group, obj["kind"]) not in blacklisted, path
