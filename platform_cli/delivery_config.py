"""`jenkins/delivery.yaml`: the rollout gate's settings per environment, read once and validated.

Each bad key is named with its value and what is allowed, before any API is called.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from infra.config import REPO_ROOT

DELIVERY_FILE = REPO_ROOT / "jenkins" / "delivery.yaml"


class DeliveryConfigError(ValueError):
    """jenkins/delivery.yaml is invalid; the message lists every problem."""


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


class RolloutSettings(_Model):
    """How one environment's rollout is judged."""

    argocd_url: str = Field(pattern=r"^https?://\S+$", description="ArgoCD API server URL.")
    rollout_timeout_seconds: float = Field(
        ge=1, le=3600, description="How long the apps may take to be Synced and Healthy."
    )
    poll_seconds: float = Field(ge=0.05, le=120, description="Pause between two ArgoCD reads.")
    smoke_api_key_secret: str = Field(
        min_length=1, description="Secrets Manager id of the events-api key the smoke test uses."
    )


class DeliveryConfig(_Model):
    app_selector: str = Field(min_length=1, description="Label selector of the Applications.")
    environments: dict[str, RolloutSettings]

    def for_env(self, env: str) -> RolloutSettings:
        if env not in self.environments:
            raise DeliveryConfigError(
                f"environments.{env}: missing; configured: {', '.join(sorted(self.environments))}"
            )
        return self.environments[env]


def load_delivery_config(path: Path = DELIVERY_FILE) -> DeliveryConfig:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DeliveryConfigError(f"{path.name}: cannot be read: {exc}") from None
    try:
        return DeliveryConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"  - {'.'.join(str(p) for p in err['loc'])}: {err['msg']} (got {err.get('input')!r})"
            for err in exc.errors()
        ]
        raise DeliveryConfigError(f"{path.name} is invalid:\n" + "\n".join(lines)) from None
