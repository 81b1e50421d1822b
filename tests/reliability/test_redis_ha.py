"""The prod overlay's Redis with Sentinel, run for real: `deploy/k8s/overlays/prod/redis-ha.sh`
starts three Redis servers and three Sentinels (as the three `redis` pods would, in pod order,
here on one host with free ports), with the passwords on, and the bus on the services'
`redis+sentinel://` URL.

Checked: the first node is the master and the others replicate it; the Sentinels found each
other (they authenticate with their own password) and agree; the bus publishes and consumes
through them; when the master's pod dies (its Redis and its Sentinel) the other two promote a
replica and the bus carries on; the dead pod, started again, asks the Sentinels and comes
back as a replica of the new master, not as a second master. A planned stop of the master
(its preStop, `redis-ha.sh handover`) pauses writes, promotes a replica and makes the old
master follow it: nothing accepted is lost (a bare `SENTINEL FAILOVER` lost some here: the
old master kept taking writes that a replica not yet moved over acknowledged).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.integration.bus_helpers import Recorder, consumer, has_outputs, recording, wait_for
from whisp_agent.sessions import RedisSessions
from whisp_cli.redis_server import find_redis_server, free_port
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.streams import RECORDINGS

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).resolve().parents[2] / "deploy/k8s/overlays/prod/redis-ha.sh"
MASTER_NAME = "whisp"
PASSWORD = "redis-pw-for-the-test"
SENTINEL_PASSWORD = "sentinel-pw-for-the-test"
HOST = "localhost"  # a host name, as the pods use (resolve- and announce-hostnames)
FAILOVER_S = 30.0


@dataclass
class Node:
    """One `redis` pod: its Redis and its Sentinel, each started by the script."""

    index: int
    redis_port: int
    sentinel_port: int
    workdir: Path
    processes: tuple[subprocess.Popen[bytes], ...] = ()

    @property
    def redis_address(self) -> str:
        return f"{HOST}:{self.redis_port}"

    def redis(self) -> redis.Redis:
        return redis.Redis(
            port=self.redis_port, password=PASSWORD, socket_timeout=2, decode_responses=True
        )

    def sentinel(self) -> redis.Redis:
        return redis.Redis(
            port=self.sentinel_port,
            password=SENTINEL_PASSWORD,
            socket_timeout=2,
            decode_responses=True,
        )

    def kill(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(timeout=10)
        self.processes = ()


class Cluster:
    def __init__(self, tmp_path: Path) -> None:
        self.nodes = [Node(i, free_port(), free_port(), tmp_path / f"redis-{i}") for i in range(3)]
        self.env = {
            "PATH": os.pathsep.join([str(find_redis_server().parent), os.environ["PATH"]]),
            "REDIS_NODES": ",".join(n.redis_address for n in self.nodes),
            "SENTINELS": ",".join(f"{HOST}:{n.sentinel_port}" for n in self.nodes),
            "REDIS_MASTER_NAME": MASTER_NAME,
            "REDIS_PASSWORD": PASSWORD,
            "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        }

    def pod_env(self, node: Node) -> dict[str, str]:
        """What redis.yaml and the redis-ha ConfigMap give a pod's containers."""
        return {
            **self.env,
            "REDIS_SELF": node.redis_address,
            "SENTINEL_SELF": f"{HOST}:{node.sentinel_port}",
            "CONF_DIR": str(node.workdir / "conf"),
            "DATA_DIR": str(node.workdir / "data"),
        }

    def start(self, node: Node) -> None:
        """The pod's two containers, then wait until both answer (its readiness)."""
        env = self.pod_env(node)
        for folder in ("CONF_DIR", "DATA_DIR"):
            Path(env[folder]).mkdir(parents=True, exist_ok=True)
        log = (node.workdir / "log").open("ab")
        node.processes = tuple(
            subprocess.Popen(["sh", str(SCRIPT), role], env=env, stdout=log, stderr=log)
            for role in ("redis", "sentinel")
        )
        until(lambda: answers(node.redis) and answers(node.sentinel), 15, f"node {node.index}")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()

    def masters_named(self) -> set[str]:
        """What each live Sentinel says the master is."""
        named = set()
        for node in self.nodes:
            if node.processes:
                host, port = node.sentinel().sentinel_get_master_addr_by_name(MASTER_NAME)
                named.add(f"{host}:{port}")
        return named

    def url(self) -> str:
        sentinels = ",".join(f"{HOST}:{n.sentinel_port}" for n in self.nodes)
        return (
            f"redis+sentinel://:{PASSWORD}@{sentinels}/{MASTER_NAME}/0"
            f"?sentinel_password={SENTINEL_PASSWORD}"
        )


def answers(client: Callable[[], redis.Redis]) -> bool:
    try:
        return bool(client().ping())
    except redis.RedisError:
        return False


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


async def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    """`until`, letting the buses run meanwhile."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.1)


def role(node: Node) -> tuple[str, str]:
    """(role, master host:port or '') as the node's own Redis reports it."""
    info = node.redis().info("replication")
    if info["role"] == "master":
        return "master", ""
    up = info.get("master_link_status") == "up"
    return ("replica" if up else "replica-unlinked"), f"{info['master_host']}:{info['master_port']}"


def sentinels_see_everyone(cluster: Cluster) -> bool:
    infos = [n.sentinel().sentinel_master(MASTER_NAME) for n in cluster.nodes]
    return all(i["num-other-sentinels"] == 2 and i["num-slaves"] == 2 for i in infos)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        for node in c.nodes:  # in pod order, each once the previous one is ready
            c.start(node)
        yield c
    finally:
        c.stop()


def settings(url: str) -> BusSettings:
    return BusSettings(
        redis_url=url, replicas_to_ack=1, claim_idle_ms=500, read_block_ms=100, max_deliveries=10
    )


@asynccontextmanager
async def buses(cluster: Cluster, handler: Recorder) -> AsyncIterator[tuple[EventBus, EventBus]]:
    """A worker consuming with `handler` and a publisher, both on the Sentinels' URL."""
    worker = EventBus(settings(cluster.url()), consumer_name="worker")
    worker.consume(consumer(handler))
    publisher = EventBus(settings(cluster.url()), consumer_name="audio")
    await worker.start()
    await publisher.connect()
    try:
        yield worker, publisher
    finally:
        await publisher.stop()
        await worker.stop()


async def publish_until_accepted(bus: EventBus, recording_id: str) -> None:
    """As a client retries a 503: the same recording until a publish returns."""
    deadline = time.monotonic() + FAILOVER_S
    while True:
        try:
            await bus.publish(RECORDINGS, recording(recording_id))
            return
        except redis.RedisError:
            assert time.monotonic() < deadline, f"{recording_id} never accepted"
            await asyncio.sleep(0.2)


async def test_three_pods_fail_over_and_the_dead_master_comes_back_as_a_replica(
    cluster: Cluster,
) -> None:
    first, second, third = cluster.nodes
    until(lambda: role(second)[0] == "replica" and role(third)[0] == "replica", 15, "sync")
    assert role(first) == ("master", "")
    assert role(second) == role(third) == ("replica", first.redis_address)

    until(lambda: sentinels_see_everyone(cluster), 15, "the Sentinels finding all")
    assert cluster.masters_named() == {first.redis_address}

    handler = Recorder()
    async with buses(cluster, handler) as (worker, publisher):
        await publish_until_accepted(publisher, "before")
        await wait_for(lambda: has_outputs(worker.redis, 1))

        # The agents' sessions reach Redis the same way (agents.sessions: redis in prod).
        sessions = RedisSessions(cluster.url(), ttl_s=60)
        assert await sessions.redis.ping()
        await sessions.close()
        sentinel_rss = [rss_mb(n.processes[1].pid) for n in cluster.nodes]

        killed_at = time.monotonic()
        first.kill()  # the master's pod dies: its Redis and its Sentinel
        await eventually(
            lambda: cluster.masters_named() <= {second.redis_address, third.redis_address},
            FAILOVER_S,
            "the two Sentinels left promoting a replica",
        )
        (promoted,) = cluster.masters_named()
        failover_s = time.monotonic() - killed_at
        await publish_until_accepted(publisher, "after")
        await wait_for(lambda: has_outputs(worker.redis, 2), timeout=FAILOVER_S)

        cluster.start(first)  # the pod is started again, with its data
        await eventually(lambda: role(first)[0] == "replica", 15, "the old master syncing")
        assert role(first) == ("replica", promoted)
        await eventually(lambda: cluster.masters_named() == {promoted}, 15, "all agreeing")
    assert handler.calls.keys() == {"before", "after"}
    print(
        f"\n[redis-ha] failover {failover_s:.1f} s after the master's pod died; "
        f"Sentinel RSS {min(sentinel_rss):.1f}-{max(sentinel_rss):.1f} MB"
    )


def rss_mb(pid: int) -> float:
    """Resident memory of a process (the script execs the server: same pid)."""
    status = Path(f"/proc/{pid}/status").read_text()
    (line,) = [row for row in status.splitlines() if row.startswith("VmRSS:")]
    return int(line.split()[1]) / 1024


async def test_a_planned_stop_of_the_master_hands_over_first(cluster: Cluster) -> None:
    """preStop on the master: a replica is promoted before the pod stops, the old master
    follows it, and a publisher retrying as clients do loses nothing meanwhile."""
    first, second, third = cluster.nodes
    until(lambda: role(second)[0] == "replica" and role(third)[0] == "replica", 15, "sync")
    until(lambda: cluster.masters_named() == {first.redis_address}, 15, "agreement")
    until(lambda: sentinels_see_everyone(cluster), 15, "the Sentinels knowing the replicas")
    handler = Recorder()
    accepted: dict[str, float] = {}  # recording -> when its publish returned
    refusals = 0
    stop = asyncio.Event()

    async def keep_publishing(publisher: EventBus) -> None:
        """A recording every 50 ms, each sent again until accepted (as a client does)."""
        nonlocal refusals
        while not stop.is_set():
            rid = f"r{len(accepted)}"
            while True:
                try:
                    await publisher.publish(RECORDINGS, recording(rid))
                    break
                except redis.RedisError:
                    refusals += 1
                    await asyncio.sleep(0.05)
            accepted[rid] = time.monotonic()
            await asyncio.sleep(0.05)

    async with buses(cluster, handler) as (worker, publisher):
        load = asyncio.create_task(keep_publishing(publisher))
        await asyncio.sleep(1.0)
        began = time.monotonic()
        handover = await asyncio.create_subprocess_exec(
            "sh", str(SCRIPT), "handover", env=cluster.pod_env(first),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        said, _ = await asyncio.wait_for(handover.communicate(), FAILOVER_S)
        handed_over_s = time.monotonic() - began
        assert handover.returncode == 0, said
        (promoted,) = cluster.masters_named()
        assert promoted in (second.redis_address, third.redis_address), said
        assert f"handed over to {promoted}".encode() in said, said
        assert role(first) == ("replica", promoted)  # it takes no write after the switch
        first.kill()  # then the pod stops, as after its preStop
        await asyncio.sleep(1.0)
        stop.set()
        await load
        await wait_for(lambda: has_outputs(worker.redis, len(accepted)), timeout=FAILOVER_S)
    assert handler.calls.keys() == accepted.keys()  # every accepted one, none lost
    times = sorted(accepted.values())
    stall_s = max(b - a for a, b in itertools.pairwise(times))
    print(
        f"\n[redis-ha] planned handover {handed_over_s:.1f} s; the longest a write waited "
        f"{stall_s:.2f} s ({refusals} refused, sent again); {len(accepted)} accepted, none lost"
    )
    assert stall_s < FAILOVER_S, "a write waited on the paused old master for good"
