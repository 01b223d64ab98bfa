"""The event-loop lag probe: a 1 ms timer that records how late it ran."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry, Histogram

from proxy.ops.loop_lag import LoopLagProbe
from tests.proxy.support import Recorder, completion, make_settings, proxy_client

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _count_and_sum(histogram: Histogram) -> tuple[float, float]:
    samples = {s.name: s.value for metric in histogram.collect() for s in metric.samples}
    return samples["lag_seconds_count"], samples["lag_seconds_sum"]


async def test_a_blocked_loop_shows_as_lag() -> None:
    histogram = Histogram("lag_seconds", "test", registry=CollectorRegistry())
    probe = LoopLagProbe(histogram)
    probe.start()
    try:
        await asyncio.sleep(0.05)
        quiet_count, quiet_sum = _count_and_sum(histogram)
        time.sleep(0.03)  # holds the loop, as a slow callback would
        await asyncio.sleep(0.01)
    finally:
        probe.stop()
    count, total = _count_and_sum(histogram)
    assert quiet_count >= 5  # a timer about every millisecond while idle
    assert total - quiet_sum >= 0.025  # the 30 ms block, seen by the timer that waited it out
    assert count > quiet_count
    await asyncio.sleep(0.01)
    assert _count_and_sum(histogram)[0] == count  # stopped: nothing more recorded


@pytest.mark.parametrize("enabled", [True, False])
async def test_server_loop_lag_probe_turns_the_metric_on(enabled: bool) -> None:
    settings = make_settings(server={"loop_lag_probe": enabled})
    async with proxy_client(Recorder(httpx.Response(200, json=completion())), settings) as client:
        await asyncio.sleep(0.05)
        text = (await client.get("/metrics")).text
    (line,) = [
        x for x in text.splitlines() if x.startswith("spendgate_event_loop_lag_seconds_count")
    ]
    assert (float(line.split()[-1]) > 0) is enabled
