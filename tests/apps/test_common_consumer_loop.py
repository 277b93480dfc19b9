"""The shared consumer loop with a minimal handler, on the real broker: what a new consumer app
(the reminders service, say) gets by writing only a handler."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from prometheus_client import generate_latest

from apps.common import consumer_loop
from apps.common.consumer_loop import (
    Batch,
    BatchIncomplete,
    Completed,
    ConsumerLoop,
    ConsumerMetrics,
    HandBack,
    LoopContext,
    LoopSettings,
)
from apps.common.kafka import KafkaSettings, header_dict, make_consumer
from platform_cli.embedded import KafkaBroker
from tests.apps.conftest import FAST_GROUP_SETTINGS
from tests.apps.consumer_harness import (
    group_caught_up,
    metric_value,
    produce,
    read_topic,
    running_in_thread,
    wait_until,
)


@dataclass
class Recorder:
    """Keeps every value it is handed; b"poison" is dead-lettered, as an app would."""

    seen: list[bytes] = field(default_factory=list)
    fail_once_after: int | None = None
    """Raise BatchIncomplete once, durable up to this many records of the first batch."""
    hand_back: bool = False
    opened: bool = False
    closed: bool = False
    context: LoopContext | None = None

    def open(self, context: LoopContext) -> None:
        self.context, self.opened = context, True

    def checks(self) -> Mapping[str, bool]:
        return {"recorder": self.opened and not self.closed}

    def close(self) -> None:
        self.closed = True

    def handle(self, batch: Batch) -> Any:
        assert self.context is not None
        if self.hand_back:
            return _HandedBack()
        records = batch.records
        if self.fail_once_after is not None:
            done, self.fail_once_after = min(self.fail_once_after, len(records) - 1), None
            self.seen += [r.value for r in records[:done]]
            tp = TopicPartition(records[0].topic, records[0].partition)
            raise BatchIncomplete({tp: records[done].offset})
        for record in records:
            if record.value == b"poison":
                self.context.dead_letters.send(record, reason="test_poison", detail="a test")
            else:
                self.seen.append(record.value)
        return Completed(batch.end_offsets())


class _HandedBack:
    def done(self) -> bool:
        return True

    def result(self) -> Mapping[TopicPartition, int]:
        raise HandBack("stopping before this batch was durable")


def _loop(
    kafka: KafkaBroker, topics: list[str], handler: Recorder, group: str
) -> tuple[ConsumerLoop, threading.Event]:
    source, dlq = topics
    settings = LoopSettings(
        service="recorder",
        group_id=group,
        topics=[source],
        dead_letter_topic=dlq,
        kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap),
        consumer_options=FAST_GROUP_SETTINGS,
        poll_timeout_ms=100,
    )
    stop = threading.Event()
    return ConsumerLoop(settings, handler, stop, ConsumerMetrics("recorder")), stop


def test_a_handler_is_all_a_consumer_app_needs(kafka: KafkaBroker, make_topics: Any) -> None:
    topics = make_topics("source", "source.dlq")
    values = [f"v{i}".encode() for i in range(20)]
    produce(kafka.bootstrap, topics[0], [*values[:10], b"poison", *values[10:]], key=b"k")
    handler = Recorder()
    loop, stop = _loop(kafka, topics, handler, "recorder")
    assert loop.ready() == {"consumer": False, "recorder": False}
    with running_in_thread(loop, stop):
        assert wait_until(lambda: len(handler.seen) == 20, timeout=30)
        assert wait_until(lambda: loop.ready()["consumer"], timeout=5)
        assert loop.ready() == {"consumer": True, "recorder": True}
    assert handler.seen == values  # in order, each once
    assert handler.closed
    metrics = generate_latest(loop.metrics.registry).decode()
    assert metric_value(metrics, "recorder_messages_consumed_total") == 21
    assert metric_value(metrics, "recorder_messages_processed_total") == 21
    assert metric_value(metrics, "recorder_dead_lettered_total") == 1
    # The final commit before leaving the group covered everything.
    assert group_caught_up(kafka.bootstrap, "recorder", [topics[0]])
    (dead,) = read_topic(kafka.bootstrap, topics[1])
    headers = header_dict(dead.headers)
    assert (dead.key, dead.value) == (b"k", b"poison")
    assert (headers["dlq.reason"], headers["dlq.detail"]) == ("test_poison", "a test")
    assert (headers["dlq.original.offset"], headers["dlq.consumer.group"]) == ("10", "recorder")


def test_a_batch_that_fails_part_way_commits_its_durable_part_and_rereads_the_rest(
    kafka: KafkaBroker, make_topics: Any
) -> None:
    topics = make_topics("source", "source.dlq")
    values = [f"v{i}".encode() for i in range(12)]
    produce(kafka.bootstrap, topics[0], values, key=b"k")
    handler = Recorder(fail_once_after=5)
    loop, stop = _loop(kafka, topics, handler, "partial")
    with running_in_thread(loop, stop):
        assert wait_until(lambda: len(handler.seen) >= 12, timeout=30)
        assert wait_until(lambda: group_caught_up(kafka.bootstrap, "partial", [topics[0]]), 20)
    # The five made durable before the failure are not handed in again; the rest is, once.
    assert handler.seen == values
    metrics = generate_latest(loop.metrics.registry).decode()
    assert metric_value(metrics, "recorder_batch_failures_total") == 1


def test_a_batch_handed_back_on_stop_stays_uncommitted(
    kafka: KafkaBroker, make_topics: Any
) -> None:
    topics = make_topics("source", "source.dlq")
    produce(kafka.bootstrap, topics[0], [b"a", b"b", b"c"], key=b"k")
    handler = Recorder(hand_back=True)
    loop, stop = _loop(kafka, topics, handler, "handback")
    with running_in_thread(loop, stop) as thread:
        # Handing back ends the run (it only happens when stopping): no commit, group left.
        thread.join(30)
        assert not thread.is_alive()
    assert handler.closed
    assert not group_caught_up(kafka.bootstrap, "handback", [topics[0]])
    # The next member starts from the beginning: nothing was lost.
    again = Recorder()
    loop, stop = _loop(kafka, topics, again, "handback")
    with running_in_thread(loop, stop):
        assert wait_until(lambda: again.seen == [b"a", b"b", b"c"], timeout=30)


def test_a_broker_outage_surfacing_from_poll_is_waited_out_not_fatal(
    kafka: KafkaBroker, make_topics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kafka-python 3.0.12 can raise `KafkaConnectionError: 111 ECONNREFUSED` out of `poll()`
    when a metadata refresh fails during its coordinator lookup with the broker down (seen in
    a CI run of test_reliability_outage: audit exited and never caught up). Which poll hits that
    path depends on timing, so here the real consumer's next polls raise exactly that error, as
    the client does, and the rest runs on the real broker."""
    topics = make_topics("source", "source.dlq")
    values = [f"v{i}".encode() for i in range(10)]
    produce(kafka.bootstrap, topics[0], values, key=b"k")
    outage = threading.Event()
    failed_polls: list[int] = []

    def consumer_whose_poll_sees_the_outage(*args: Any, **kwargs: Any) -> Any:
        consumer = make_consumer(*args, **kwargs)
        real_poll = consumer.poll

        def poll(*poll_args: Any, **poll_kwargs: Any) -> Any:
            if outage.is_set():
                failed_polls.append(1)
                raise KafkaConnectionError("111 ECONNREFUSED")
            return real_poll(*poll_args, **poll_kwargs)

        consumer.poll = poll  # type: ignore[method-assign]
        return consumer

    monkeypatch.setattr(consumer_loop, "make_consumer", consumer_whose_poll_sees_the_outage)
    handler = Recorder()
    loop, stop = _loop(kafka, topics, handler, "outage")
    with running_in_thread(loop, stop) as thread:
        assert wait_until(lambda: len(handler.seen) == 10, timeout=30)
        outage.set()
        assert wait_until(lambda: len(failed_polls) >= 3, timeout=30)
        assert thread.is_alive()
        assert loop.ready()["consumer"] is False  # not ready while no broker answers
        outage.clear()
        produce(kafka.bootstrap, topics[0], [b"after"], key=b"k")
        assert wait_until(lambda: len(handler.seen) == 11, timeout=30)
        assert wait_until(lambda: loop.ready()["consumer"], timeout=10)
    assert handler.seen == [*values, b"after"]
    metrics = generate_latest(loop.metrics.registry).decode()
    assert metric_value(metrics, 'recorder_batch_failures_total{stage="poll"}') == len(failed_polls)


def test_an_error_that_is_not_retriable_still_ends_the_loop(
    kafka: KafkaBroker, make_topics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = make_topics("source", "source.dlq")

    def consumer_refused_by_the_broker(*args: Any, **kwargs: Any) -> Any:
        consumer = make_consumer(*args, **kwargs)

        def poll(*poll_args: Any, **poll_kwargs: Any) -> Any:
            raise TopicAuthorizationFailedError()

        consumer.poll = poll  # type: ignore[method-assign]
        return consumer

    monkeypatch.setattr(consumer_loop, "make_consumer", consumer_refused_by_the_broker)
    handler = Recorder()
    loop, _stop = _loop(kafka, topics, handler, "refused")
    with pytest.raises(TopicAuthorizationFailedError):
        loop.run()
    assert handler.closed
