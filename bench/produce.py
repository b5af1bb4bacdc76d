"""Producer cost and latency: ``send`` per record against one closed batch per partition (streamer/kafka/produce.py).

Against a running broker (``VITALS_KAFKA_BOOTSTRAP``, default the fleet bench's 127.0.0.1:39092): 8 and 200
records of 700 bytes to 8 partitions, acknowledged (acks=all, idempotent), median of 30, for linger 5 ms and 0.

    python bench/produce.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaProducer  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

from streamer.kafka.produce import send_all  # noqa: E402
from streamer.kafka.runner import Outgoing  # noqa: E402

BOOTSTRAP = os.environ.get("VITALS_KAFKA_BOOTSTRAP", "127.0.0.1:39092")
VALUE = b"x" * 700


async def per_record(producer: AIOKafkaProducer, topic: str, n: int) -> None:
    futures = [await producer.send(topic, VALUE, key=b"k%d" % i, partition=i % 8) for i in range(n)]
    await asyncio.gather(*futures)


async def batched(producer: AIOKafkaProducer, topic: str, n: int) -> None:
    outgoing = [Outgoing(topic, b"k%d" % i, VALUE, i % 8) for i in range(n)]
    await asyncio.gather(*await send_all(producer, outgoing))


async def main() -> None:
    topic = f"producebench{int(time.time())}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(topic, 8, 1)])
    admin.close()
    for linger in (5, 0):
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True,
                                    linger_ms=linger, max_batch_size=1 << 20)  # fmt: skip
        await producer.start()
        await asyncio.sleep(0.5)
        for name, fn in (("send", per_record), ("batch", batched)):
            for n in (8, 200):
                times, cpu = [], time.process_time()
                for _ in range(30):
                    t = time.perf_counter()
                    await fn(producer, topic, n)
                    times.append((time.perf_counter() - t) * 1000)
                us = (time.process_time() - cpu) / (30 * n) * 1e6
                print(f"linger={linger} {name} n={n}: median {statistics.median(times):.1f} ms, {us:.1f} us CPU/record")
        await producer.stop()
    print("load", os.getloadavg())


if __name__ == "__main__":
    asyncio.run(main())
