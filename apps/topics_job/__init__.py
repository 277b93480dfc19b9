"""Kafka topics as code: the PreSync Job that creates and updates the platform's topics."""
