"""Shared library of the bundled apps: envelope, Kafka, database, logging, tracing, health."""
