"""Redis Sentinel failover under load: real `redis-server` master and replica, a real
Sentinel, the bus on a `redis+sentinel://` URL with `replicas_to_ack: 1`.

A publisher (as the audio service accepts recordings) publishes a recording every 25 ms and
retries the same event until it is accepted, as a client retries a 503; a consumer group
transcribes them. Mid-way the master is SIGKILLed: the Sentinel promotes the replica and
both sides find it through the Sentinel. Every recording whose publish returned must end
with exactly one transcript — none lost with the master, none doubled by the retries.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integration.bus_helpers import Recorder, consumer, recording, stream_events
from tests.integration.test_dlq import whisp
from whisp_cli.redis_server import RedisServer, find_redis_server, free_port
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.redis_client import redacted
from whisp_shared.streams import RECORDINGS, TRANSCRIPTS

pytestmark = pytest.mark.e2e

MASTER = "whisp"
RECORDINGS_TOTAL = 60
KILL_AFTER = 20


class Sentinel:
    """One `redis-server --sentinel` watching `master` (quorum 1: the only Sentinel)."""

    def __init__(self, workdir: Path, master: RedisServer) -> None:
        self.port = free_port()
        self.conf = workdir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 500\n"
            f"sentinel failover-timeout {MASTER} 3000\n"
        )
        self.process = subprocess.Popen(
            [str(find_redis_server()), str(self.conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.sentinel_get_master_addr_by_name(MASTER):
                    break
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the Sentinel did not come up")
            time.sleep(0.05)
        self.client = client

    def master_port(self) -> int:
        _host, port = self.client.sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def sentinel_pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer, Sentinel]]:
    # No 5-s wait for more replicas before the first full sync.
    master = RedisServer(
        data_dir=tmp_path / "master", extra_args=("--repl-diskless-sync-delay", "0")
    ).start()
    replica = RedisServer(
        data_dir=tmp_path / "replica", extra_args=("--replicaof", "127.0.0.1", str(master.port))
    ).start()
    probe = redis.Redis(port=replica.port)
    deadline = time.monotonic() + 10
    while probe.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica never synced"
        time.sleep(0.05)
    probe.close()
    sentinel = Sentinel(tmp_path, master)
    yield master, replica, sentinel
    sentinel.stop()
    replica.close()
    master.close()


async def test_a_failover_loses_no_accepted_recording(
    sentinel_pair: tuple[RedisServer, RedisServer, Sentinel],
) -> None:
    master, replica, sentinel = sentinel_pair
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/{MASTER}/0"
    settings = BusSettings(
        redis_url=url,
        replicas_to_ack=1,
        replica_ack_ms=100,  # after the failover the new master has no replica left
        claim_idle_ms=500,
        read_block_ms=100,
        max_deliveries=10,
    )
    engine = Recorder()
    worker = EventBus(settings, consumer_name="worker")
    worker.consume(consumer(engine, max_workers=4))
    publisher = EventBus(settings, consumer_name="audio")
    await worker.start()
    await publisher.connect()
    accepted: list[str] = []
    refusals = 0
    try:
        for n in range(RECORDINGS_TOTAL):
            if n == KILL_AFTER:
                master.stop(kill=True)
            event = recording(f"rec-{n:03d}")
            while True:  # the client retries the same recording until it is accepted
                try:
                    await publisher.publish(RECORDINGS, event)
                    break
                except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
                    refusals += 1
                    await asyncio.sleep(0.1)
            accepted.append(event.recording_id)
            await asyncio.sleep(0.025)
        assert sentinel.master_port() == replica.port, "the Sentinel did not fail over"
        assert refusals > 0, "the kill landed after the last publish: nothing was tested"

        new_master = redis.asyncio.Redis(port=replica.port)
        deadline = time.monotonic() + 30
        while await new_master.xlen(TRANSCRIPTS) < len(accepted):
            assert time.monotonic() < deadline, "not every accepted recording was transcribed"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # anything doubled would show up by now
        outputs = Counter(e.recording_id for e in await stream_events(new_master, TRANSCRIPTS))
        await new_master.aclose()
    finally:
        await publisher.stop()
        await worker.stop()
    assert sorted(outputs) == sorted(accepted)
    assert set(outputs.values()) == {1}, "a recording was transcribed twice"
    assert "***" not in redacted(url)  # no password here: nothing to hide, nothing mangled
    # Ops tooling finds the new master through the Sentinel too (the runbook's `whisp dlq`).
    code, out = await whisp(url, "list")
    assert (code, out.strip()) == (0, "No dead letters."), out


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@db:6379/0", "redis://:***@db:6379/0"),
        ("rediss://app:s3cret@db:6380/1", "rediss://app:***@db:6380/1"),
        (
            "redis+sentinel://:pw@s1:26379,s2:26379/whisp/0?sentinel_password=spw",
            "redis+sentinel://:***@s1:26379,s2:26379/whisp/0?sentinel_password=***",
        ),
    ],
)
def test_passwords_never_reach_logs(url: str, shown: str) -> None:
    assert redacted(url) == shown
