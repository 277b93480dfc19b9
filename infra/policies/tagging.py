"""Every taggable AWS resource carries the base tags (project, stack, managed-by).

Taggability is read from the pinned pulumi-aws SDK rather than kept as a hand-written list: a
resource type is taggable when its generated `<Type>Args` class has a `tags` input. The SDK is the
provider schema in Python form, so the answer follows a provider upgrade with no list to maintain,
and it is computed once per type (cached). Type tokens map to SDK classes mechanically:
`aws:<module>/<x>:<Class>` lives in `pulumi_aws.<module>` (`index` is the package root, Python
keywords get a trailing underscore), which holds for every resource module of the SDK.
"""

from __future__ import annotations

import functools
import importlib
import keyword
from collections.abc import Iterator, Mapping
from typing import Any

from infra.contracts import REQUIRED_TAG_KEYS
from infra.policies.catalog import rule
from infra.policies.model import RuleContext
from infra.policies.values import as_list, get, is_sequence, non_empty_string, parse_json_object


@functools.cache
def is_taggable(resource_type: str) -> bool:
    """True when the pulumi-aws resource behind `resource_type` accepts a `tags` input."""
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "aws":
        return False
    module = parts[1].split("/")[0]
    if module == "index":
        module_path = "pulumi_aws"
    else:
        suffix = "_" if keyword.iskeyword(module) else ""
        module_path = f"pulumi_aws.{module}{suffix}"
    try:
        sdk_module = importlib.import_module(module_path)
    except ImportError:
        return False
    args_class = getattr(sdk_module, f"{parts[2]}Args", None)
    return isinstance(getattr(args_class, "tags", None), property)


def tag_map(tags: Any) -> dict[str, str]:
    """Tags as a mapping; also accepts the list form `[{key, value}, ...]` (autoscaling groups)."""
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items() if v is not None}
    if is_sequence(tags):
        return {
            str(get(item, "key")): str(get(item, "value"))
            for item in as_list(tags)
            if get(item, "key") is not None
        }
    return {}


def _provider_default_tags(context: RuleContext) -> dict[str, str]:
    provider = context.provider_resource()
    if provider is None:
        return {}
    # Provider inputs of object type reach the engine JSON-encoded.
    default_tags = parse_json_object(provider.inputs.get("defaultTags"))
    return tag_map(get(default_tags, "tags")) if default_tags else {}


@rule(
    "required-tags",
    f"Taggable AWS resources carry the tags {', '.join(REQUIRED_TAG_KEYS)} (directly or through "
    "the provider's defaultTags).",
    types=None,
)
def required_tags(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    if not is_taggable(resource_type):
        return
    tags = {**_provider_default_tags(context), **tag_map(get(inputs, "tags"))}
    missing = [key for key in REQUIRED_TAG_KEYS if not non_empty_string(tags.get(key))]
    if missing:
        yield f"missing required tags: {', '.join(missing)}"
