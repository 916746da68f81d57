"""The Kafka side of the log bus: consume the collector's topic into the log store (ids make it idempotent)."""

from __future__ import annotations

import asyncio
import json
import logging

import anyio

from hpcmind.settings import Settings

from .intake import log_lines_in
from .service import AnalyzerService

log = logging.getLogger("hpcmind.logbus")


async def topic_partitions(bootstrap: str, topic: str) -> list[int]:
    """The topic's partitions, waiting until it exists. Asked by name (the admin client's metadata request): a
    consumer's own metadata refresh covers only topics it already knows, so an analyzer started before the
    collector's first record would never see the topic appear; brokers that create topics on demand create it now."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while True:
            for t in await admin.describe_topics([topic]):
                if t.get("topic") == topic and not t.get("error_code") and t.get("partitions"):
                    return sorted(int(p["partition"]) for p in t["partitions"])
            await asyncio.sleep(1.0)
    finally:
        await admin.close()


async def kafka_consumer(settings: Settings, service: AnalyzerService) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = settings.kafka.topic
    # assign() with a group id for commits: a consumer-group join takes 5-18 s on tansu and buys nothing here. With
    # several analyzer replicas each reads every partition; a line stored twice is dropped by its id
    bootstrap = f"{settings.kafka.host}:{settings.kafka.port}"
    parts = await topic_partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id="hpcmind-analyzer",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        for tp in tps:
            if await consumer.committed(tp) is None:
                await consumer.seek_to_beginning(tp)
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            lines = []
            for msgs in batch.values():
                for m in msgs:
                    try:
                        lines.append(json.loads(m.value or b"{}"))
                    except json.JSONDecodeError:
                        log.warning("skipping a non-JSON record at %s:%d", m.topic, m.offset)
            lines, bad = log_lines_in(lines)  # the same clamping as the HTTP ingest
            if bad:
                log.warning("skipping %d record(s) that are not log lines (need id and line)", bad)
            if lines:
                await anyio.to_thread.run_sync(service.ingest_logs, lines, "kafka")
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
