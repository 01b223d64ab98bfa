"""Dependencies failing under load: PostgreSQL cut and restored, Redis killed and restarted, SIGTERM."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from pricing.ledger import audit, open_ledger
from tests.e2e_reliability.harness import (
    DRAIN_TIMEOUT_S,
    SIM_HOLD_S,
    TcpForwarder,
    port_open,
    require_service,
    sim_config,
    sqlite_request_ids,
)
from tests.support.redis_server import RedisServer
from tests.support.servers import Proxy, Simulator, start_proxy, start_simulator

pytestmark = pytest.mark.e2e

PG = ("127.0.0.1", 5432)
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def chat(client: httpx.Client, content: str, *, stream: bool = False) -> httpx.Response:
    body = {
        "model": "gpt-4o",
        "stream": stream,
        "messages": [{"role": "user", "content": f"{content} {uuid.uuid4().hex}"}],
    }
    return client.post("/v1/chat/completions", json=body)


class Load:
    """Requests sent from a few threads until stopped; every answer is kept."""

    def __init__(self, proxy: Proxy, *, threads: int = 4) -> None:
        self._proxy = proxy
        self._threads = threads
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.answers: list[tuple[int, str | None]] = []
        self.failures: list[str] = []
        self._workers: list[threading.Thread] = []

    def __enter__(self) -> Load:
        for _ in range(self._threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self) -> None:
        with httpx.Client(base_url=self._proxy.base_url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    reply = chat(client, "load")
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failures.append(repr(exc))
                    continue
                with self._lock:
                    self.answers.append(
                        (reply.status_code, reply.headers.get("x-spendgate-request-id"))
                    )
                    if reply.status_code != 200:
                        self.failures.append(f"{reply.status_code} {reply.text[:200]}")
                time.sleep(0.01)

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def wait_for(self, more: int, *, timeout_s: float = 20.0) -> None:
        target = self.count() + more
        deadline = time.monotonic() + timeout_s
        while self.count() < target and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.count() >= target, f"load stalled at {self.count()} answers"

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=35)


def gauge(text: str, name: str) -> float:
    values = [float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    return sum(values)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    simulator = start_simulator(tmp_path_factory.mktemp("sim"), hold_s=SIM_HOLD_S)
    try:
        yield simulator
    finally:
        simulator.process.stop(timeout_s=5)


@pytest.fixture
def pg_schema() -> Iterator[str]:
    require_service("PostgreSQL at 127.0.0.1:5432", port_open(*PG))
    import psycopg

    schema = f"reliability_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as db:
        db.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.postgres
def test_postgres_outage_under_load_loses_no_row(
    sim: Simulator, tmp_path: Path, pg_schema: str
) -> None:
    import psycopg

    forwarder = TcpForwarder(PG)
    forwarder.start()
    spill_base = tmp_path / "spill" / "ledger.spill"
    url = (
        f"postgresql://postgres@127.0.0.1:{forwarder.port}/test?options=-csearch_path%3D{pg_schema}"
    )
    config = sim_config(sim, url)
    config["ledger"] = {"url": url, "spill_path": str(spill_base)}
    proxy = start_proxy(config, tmp_path, kind=Proxy, stop_timeout_s=DRAIN_TIMEOUT_S)
    spilled_during_outage = 0.0
    spill_files_seen: list[str] = []
    try:
        with Load(proxy) as load:
            load.wait_for(20)
            forwarder.cut()
            load.wait_for(40)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and spilled_during_outage <= 0:
                spilled_during_outage = gauge(proxy.metrics(), "spendgate_ledger_spill_pending")
                time.sleep(0.1)
            spill_files_seen = [
                p.name for p in spill_base.parent.glob(spill_base.name + ".*")
                if p.suffix != ".lock" and p.stat().st_size > 0
            ]  # fmt: skip
            forwarder.resume()
            load.wait_for(20)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if gauge(proxy.metrics(), "spendgate_ledger_spill_pending") == 0:
                break
            time.sleep(0.2)
        replayed = gauge(proxy.metrics(), "spendgate_ledger_spill_pending") == 0
    finally:
        code = proxy.process.stop()
        forwarder.close()
    assert code in (0, -15), proxy.process.describe()
    assert not load.failures, load.failures[:5]
    assert spilled_during_outage > 0, "rows never spilled while PostgreSQL was away"
    assert spill_files_seen, "no spill file next to ledger.spill_path during the outage"
    assert replayed, "the spill was not replayed after PostgreSQL came back"
    with psycopg.connect(PG_ADMIN_URL) as db:
        rows = db.execute(f'SELECT request_id FROM "{pg_schema}".ledger_rows').fetchall()
    stored = Counter(row[0] for row in rows)
    sent = [rid for _, rid in load.answers]
    assert all(rid is not None for rid in sent)
    lost = [rid for rid in sent if stored[rid] == 0]
    doubled = [rid for rid, n in stored.items() if n > 1]
    assert not lost, f"{len(lost)} of {len(sent)} rows lost"
    assert not doubled, f"{len(doubled)} rows stored twice"
    assert len(stored) == len(sent)


def _pg_tables(schema: str) -> set[str]:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL) as db:
        rows = db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema]
        ).fetchall()
    return {row[0] for row in rows}


def _wait_gauge(proxy: Proxy, name: str, wanted: float, *, timeout_s: float = 30.0) -> float:
    deadline = time.monotonic() + timeout_s
    value = gauge(proxy.metrics(), name)
    while value != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
        value = gauge(proxy.metrics(), name)
    return value


@pytest.mark.postgres
def test_postgres_down_at_start_gets_its_schema_and_every_row_when_it_returns(
    sim: Simulator, tmp_path: Path, pg_schema: str
) -> None:
    import openai
    import psycopg

    forwarder = TcpForwarder(PG)  # not listening yet: PostgreSQL is down as the proxy starts
    url = (
        f"postgresql://postgres@127.0.0.1:{forwarder.port}/test?options=-csearch_path%3D{pg_schema}"
    )
    config = sim_config(sim, url)
    config["ledger"] = {"url": url, "spill_path": str(tmp_path / "spill" / "ledger.spill")}
    proxy = start_proxy(config, tmp_path, kind=Proxy, stop_timeout_s=DRAIN_TIMEOUT_S)
    client = openai.OpenAI(base_url=proxy.openai_base_url, api_key="unused", max_retries=0)

    def ask(i: int) -> str:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": f"down at start {i} {uuid.uuid4()}"}],
        )
        assert raw.parse().choices[0].message.content
        return raw.headers["x-spendgate-request-id"]

    try:
        sent = [ask(i) for i in range(10)]
        spilled = _wait_gauge(proxy, "spendgate_ledger_spill_pending", 10)
        tables_while_down = _pg_tables(pg_schema)
        forwarder.start()
        sent += [ask(i) for i in range(10, 15)]
        replayed = _wait_gauge(proxy, "spendgate_ledger_spill_pending", 0)
        backlog = _wait_gauge(proxy, "spendgate_ledger_backlog", 0)
    finally:
        code = proxy.stop()
        forwarder.close()
    assert code in (0, -15), proxy.process.describe()
    assert spilled == 10, "rows did not spill while PostgreSQL was down"
    assert tables_while_down == set()
    assert (replayed, backlog) == (0, 0), "the spill was not replayed without a restart"
    assert {"ledger_rows", "ledger_chain_heads", "ledger_rollup"} <= _pg_tables(pg_schema)
    with psycopg.connect(PG_ADMIN_URL) as db:
        rows = db.execute(f'SELECT request_id FROM "{pg_schema}".ledger_rows').fetchall()
    stored = Counter(row[0] for row in rows)
    assert sorted(stored) == sorted(sent) and set(stored.values()) == {1}
    direct = open_ledger(
        f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{pg_schema}"
    )
    try:
        assert audit(direct).ok
    finally:
        direct.close()


@pytest.mark.redis
def test_redis_killed_and_restarted_under_load_fails_no_request(
    sim: Simulator, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis")
    redis, port = server.start(), server.port
    config = sim_config(
        sim,
        f"sqlite:///{tmp_path / 'ledger.db'}",
        cache={"backend": "redis", "redis_url": f"redis://127.0.0.1:{port}/0",
               "prefix": f"rel:{uuid.uuid4().hex}:"},
    )  # fmt: skip
    proxy = start_proxy(config, tmp_path, kind=Proxy, stop_timeout_s=DRAIN_TIMEOUT_S)
    again = None
    try:
        with Load(proxy) as load:
            load.wait_for(20)
            redis.kill()
            load.wait_for(30)
            again = server.start()  # on the same port
            load.wait_for(30)
    finally:
        code = proxy.process.stop()
        for process in (redis, again):
            if process is not None:
                process.stop(timeout_s=5)
    assert code in (0, -15), proxy.process.describe()
    assert not load.failures, load.failures[:5]
    stored = Counter(sqlite_request_ids(tmp_path / "ledger.db"))
    assert sorted(stored) == sorted(rid for _, rid in load.answers if rid)
    assert set(stored.values()) == {1}


def wait_for_arrivals(sim: Simulator, count: int, *, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sum(sim.stats()["by_model"].values()) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} requests reached the upstream: {sim.stats()}")


def test_sigterm_lets_in_flight_requests_finish_and_flushes_the_ledger(tmp_path: Path) -> None:
    slow = start_simulator(tmp_path / "slow-sim", hold_s=SIM_HOLD_S, delay_ms=500)
    ledger = tmp_path / "ledger.db"
    proxy = start_proxy(
        sim_config(slow, f"sqlite:///{ledger}"),
        tmp_path,
        kind=Proxy,
        stop_timeout_s=DRAIN_TIMEOUT_S,
    )
    results: list[Any] = []
    try:
        with ThreadPoolExecutor(max_workers=12) as pool:

            def one(i: int) -> tuple[int, str | None]:
                with httpx.Client(base_url=proxy.base_url, timeout=30) as client:
                    reply = chat(client, f"in flight {i}", stream=i % 2 == 1)
                    return reply.status_code, reply.headers.get("x-spendgate-request-id")

            futures = [pool.submit(one, i) for i in range(12)]
            wait_for_arrivals(slow, 12)  # every request is at the upstream, none answered yet
            started = time.monotonic()
            code = proxy.process.stop()
            stopped_in = time.monotonic() - started
            results = [f.result(timeout=30) for f in futures]
    finally:
        proxy.process.kill()
        slow.process.stop(timeout_s=5)
    assert code in (0, -15), proxy.process.describe()
    assert stopped_in < 30, f"shutdown took {stopped_in:.1f} s"
    assert [status for status, _ in results] == [200] * 12, results
    stored = Counter(sqlite_request_ids(ledger))
    assert sorted(stored) == sorted(rid for _, rid in results if rid)
    assert set(stored.values()) == {1}
