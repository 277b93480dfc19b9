"""Container registry: ECR repositories for the bundled apps."""

from infra.registry.ecr import Registry, RegistryArgs

__all__ = ["Registry", "RegistryArgs"]
