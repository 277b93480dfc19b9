"""`python -m apps.topics_job`: read `TOPICS_SPEC`, reconcile the topics, non-zero on failure."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from kafka.admin import KafkaAdminClient

from apps.common.kafka import KafkaSettings, connection_config
from apps.topics_job.reconcile import reconcile
from apps.topics_job.spec import parse

SPEC_ENV = "TOPICS_SPEC"

log = logging.getLogger("apps.topics_job")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m apps.topics_job",
        description=f"Create or update the platform's Kafka topics from ${SPEC_ENV} (JSON), "
        "with the same Kafka settings as the apps (KAFKA_*). Exits non-zero on failure.",
    ).parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(message)s")
    raw = os.environ.get(SPEC_ENV)
    if not raw:
        log.error("%s is not set", SPEC_ENV)
        return 2
    spec = parse(raw)
    settings = KafkaSettings(KAFKA_CLIENT_ID="kafka-topics-job")
    # The same client factory settings as the apps: PLAINTEXT locally, MSK IAM in AWS.
    admin = KafkaAdminClient(**connection_config(settings))
    try:
        outcome = reconcile(admin, spec)
    finally:
        admin.close()
    log.info(json.dumps({"event": "topics.reconciled", **outcome.__dict__}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
