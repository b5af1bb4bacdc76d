"""Batches handed to the producer arrive complete, in order per partition, with keys and headers."""

from __future__ import annotations

import asyncio

import pytest

from streamer.kafka.produce import send_all
from streamer.kafka.runner import Outgoing
from streamer.kafka.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_send_all_keeps_every_record_in_partition_order(settings_factory) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    settings = settings_factory()
    ensure_topics(settings)
    topic = settings.topics.features
    big = b"y" * 900_000  # fills a batch on its own: the next record starts a new one
    outgoing = [
        Outgoing(topic, f"d{i % 5}".encode(), big if i in (7, 8) else f"{i}".encode(), i % 4, (("n", b"%d" % i),))
        for i in range(400)
    ]
    outgoing.append(Outgoing(topic, b"d0", b"no partition", None))

    async def run() -> list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]]:
        kwargs = settings.kafka_client_kwargs()
        producer = AIOKafkaProducer(acks="all", enable_idempotence=True, max_request_size=4 << 20, **kwargs)
        await producer.start()
        try:
            await asyncio.gather(*await send_all(producer, outgoing))
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, group_id=None, auto_offset_reset="earliest", **kwargs)
        await consumer.start()
        got = []
        try:
            while len(got) < len(outgoing):
                for records in (await consumer.getmany(timeout_ms=2000)).values():
                    got += [(r.partition, r.key, r.value, list(r.headers)) for r in records]
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(run())
    assert len(got) == len(outgoing)
    for p in range(4):
        want = [(o.key, o.value, [(k, v) for k, v in o.headers]) for o in outgoing if o.partition == p]
        assert [(k, v, h) for q, k, v, h in got if q == p and v != b"no partition"] == want
    assert sum(v == b"no partition" for _, _, v, _ in got) == 1
