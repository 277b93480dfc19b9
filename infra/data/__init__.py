"""Data services: Amazon MSK (Kafka) and Amazon RDS for PostgreSQL."""

from infra.data.database import Database, DatabaseArgs
from infra.data.kafka import KafkaCluster, KafkaClusterArgs

__all__ = ["Database", "DatabaseArgs", "KafkaCluster", "KafkaClusterArgs"]
