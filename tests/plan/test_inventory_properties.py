"""Property tests for the pure inventory helpers (inputs vary, so hypothesis generates them)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from platform_cli.inventory import diff_inventories, dumps, flatten, scrub
from platform_cli.offline import SECRET_MARKER

keys = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8
)
leaves = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=12))
json_values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=3)
    ),
    max_leaves=12,
)
input_maps = st.dictionaries(keys, json_values, max_size=5)


def _inventory(inputs_by_name: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "resources": [
            {"urn": f"urn:pulumi:dev::platform::aws:x/y:Y::{name}", "name": name, "inputs": inputs}
            for name, inputs in sorted(inputs_by_name.items())
        ],
        "outputs": {},
    }


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(keys, input_maps, max_size=4))
def test_an_inventory_has_no_diff_with_itself(resources: dict[str, dict[str, Any]]) -> None:
    inventory = json.loads(dumps(_inventory({n: scrub(i) for n, i in resources.items()})))
    assert diff_inventories(inventory, inventory).empty


@settings(max_examples=60, deadline=None)
@given(input_maps, keys, leaves)
def test_any_single_input_change_is_reported_at_its_path(
    inputs: dict[str, Any], key: str, value: Any
) -> None:
    before = _inventory({"r": {**inputs, key: "original"}})
    after = _inventory({"r": {**inputs, key: value}})
    changes = diff_inventories(before, after)
    if value == "original":
        assert changes.empty
    else:
        [fields] = changes.changed.values()
        assert [c.path for c in fields] == [f"inputs.{key}"]


@settings(max_examples=60, deadline=None)
@given(
    input_maps,
    st.sampled_from(["password", "masterPassword", "secretString", "apiToken"]),
    st.text(min_size=1, max_size=20),
)
def test_strings_under_credential_keys_never_survive_scrubbing(
    inputs: dict[str, Any], secret_key: str, secret: str
) -> None:
    nested = {**inputs, "nested": [{secret_key: secret}], secret_key: secret}
    scrubbed = scrub(nested)
    assert scrubbed[secret_key] == SECRET_MARKER
    assert scrubbed["nested"][0][secret_key] == SECRET_MARKER


def _leaf_count(value: Any) -> int:
    if isinstance(value, dict) and value:
        return sum(_leaf_count(v) for v in value.values())
    if isinstance(value, list) and value:
        return sum(_leaf_count(v) for v in value)
    return 1


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_flatten_gives_one_distinct_path_per_leaf(value: Any) -> None:
    # Keys are letters only, so a path can never be spelled two ways.
    assert len(flatten(value)) == _leaf_count(value)
