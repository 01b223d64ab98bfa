"""What /metrics shows after requests: counts, retries, route decisions."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest

from pricing.ledger import LedgerWriter, open_ledger
from pricing.ledger.backend import StoreBackend
from pricing.ledger.record import record_of
from pricing.ledger.spill import RejectFile
from proxy.pipeline.metrics import Metrics
from proxy.server.ledger_setup import ledger_gauges
from tests.pricing.ledger.ledger_testkit import make_row
from tests.proxy.support import Recorder, completion, make_settings, proxy_client

pytestmark = pytest.mark.anyio


async def test_a_retried_request_is_counted_once_with_one_retry() -> None:
    recorder = Recorder(httpx.Response(500, text="boom"), httpx.Response(200, json=completion()))
    settings = make_settings(routing={"retry_base_s": 0, "retry_cap_s": 0})
    async with proxy_client(recorder, settings) as client:
        ok = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "retry me"}]},
        )
        text = (await client.get("/metrics")).text
    assert ok.status_code == 200 and len(recorder.requests) == 2
    assert 'spendgate_retries_total{provider="openai"} 1.0' in text
    assert (
        'spendgate_requests_total{endpoint="chat",model="gpt-4o",provider="openai",status="200"} 1.0'
        in text
    )


async def test_access_lines_dropped_by_a_full_writer_queue_are_counted(tmp_path: Path) -> None:
    # Ledger rows past the bound spill to disk; access lines past it are dropped, and said so.
    spill = tmp_path / "spill" / "ledger.jsonl"
    store = open_ledger(f"sqlite:///{tmp_path}/ledger.db")
    writer = LedgerWriter(
        StoreBackend(store, rejects=RejectFile.beside(spill)), spill_path=spill, max_pending=3
    )
    metrics = Metrics()
    gauges = ledger_gauges(writer, metrics)
    for i in range(8):
        writer.submit(record_of(make_row(i)), note=f"line {i}")
    gauges()
    gauges()  # a running total: counted once however often it is read
    text = generate_latest(metrics.registry).decode()
    assert "spendgate_access_lines_dropped_total 5.0" in text
    writer.start()
    await writer.close()
    assert store.count() == 8  # no row is lost to the bound
    store.close()
