"""`section_fields`: a config section's settings reach a component's Args by name."""

from __future__ import annotations

from infra.config import DatabaseConfig, KafkaConfig
from infra.data.database import DatabaseArgs
from infra.data.kafka import KafkaClusterArgs
from infra.program import section_fields


def test_fields_and_derived_properties_of_the_section_are_mapped() -> None:
    mapped = section_fields(KafkaConfig(broker_count=2, storage_gib=50), KafkaClusterArgs)
    assert mapped["broker_count"] == 2
    assert mapped["storage_gib"] == 50
    # Properties count too: the replication settings are derived from the broker count.
    assert mapped["replication_factor"] == 2
    assert mapped["min_insync_replicas"] == 1


def test_only_names_both_sides_hold_are_mapped() -> None:
    mapped = section_fields(DatabaseConfig(engine_version="16.6"), DatabaseArgs)
    assert "mode" not in mapped  # the section's own switch, not a component setting
    assert "identifier" not in mapped  # the program's naming, not the section's
    assert mapped["parameter_group_family"] == "postgres16"
    assert set(mapped) == {
        "engine_version",
        "parameter_group_family",
        "instance_class",
        "allocated_storage_gib",
        "max_allocated_storage_gib",
        "multi_az",
        "backup_retention_days",
        "database_name",
        "performance_insights_retention_days",
    }
