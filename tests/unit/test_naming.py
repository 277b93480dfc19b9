"""Names and tags: plain cases and properties over arbitrary inputs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from infra.naming import merge_tags, physical_name

tag_maps = st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=5)


def test_user_tags_win_over_base_tags_and_name_comes_first() -> None:
    tags = merge_tags("plat-dev-vpc", {"team": "base", "stack": "dev"}, {"team": "payments"})
    assert next(iter(tags)) == "Name"
    assert tags == {"Name": "plat-dev-vpc", "team": "payments", "stack": "dev"}


@given(name=st.text(min_size=1, max_size=20), base=tag_maps, extra=tag_maps)
def test_merge_keeps_every_key_and_user_values(name: str, base: dict, extra: dict) -> None:
    tags = merge_tags(name, base, extra)
    assert set(tags) == {"Name", *base, *extra}
    for key, value in extra.items():
        assert tags[key] == value
    for key, value in base.items():
        if key not in extra and key != "Name":
            assert tags[key] == value


def test_physical_name_is_lowercase_and_dashed() -> None:
    assert physical_name("Plat-Prod", "audit_archive") == "plat-prod-audit-archive"


@given(
    prefix=st.from_regex(r"[a-z][a-z0-9-]{0,40}", fullmatch=True),
    role=st.from_regex(r"[a-z0-9_-]{1,60}", fullmatch=True),
    limit=st.integers(min_value=8, max_value=63),
)
def test_physical_name_fits_the_limit_and_never_ends_on_a_dash(
    prefix: str, role: str, limit: int
) -> None:
    name = physical_name(prefix, role, max_length=limit)
    assert len(name) <= limit
    assert not name.endswith("-")
    assert name == name.lower() and "_" not in name
