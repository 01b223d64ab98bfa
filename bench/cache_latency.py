"""Latency of an exact cache hit through the proxy, memory and Redis backends.

    python -m bench.cache_latency [--n 2000] [--warmup 100] [--json out.json]
                                  [--lookup-timeout-ms MS]

Starts the simulated provider and two proxies (``cache.backend: memory`` and
``redis`` on the shared server at 127.0.0.1:6379, under a unique prefix that
is deleted afterwards), stores one answer in each, then sends the same
request ``n`` times to each target from one keep-alive ``httpx.Client`` in
this process, one request at a time. The targets take turns request by
request, so a burst of load from elsewhere on the machine lands on all three
alike. The direct simulator answer for the same request is the reference: a
hit is worth having when its latency is well under the upstream's. A Redis
lookup that overruns ``cache.lookup_timeout_ms`` answers as a miss; such
answers stay in the sample (a client sees them) and are counted as misses.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

REPO = Path(__file__).resolve().parents[1]
TIKTOKEN_DIR = REPO / "tests" / "fixtures" / "tiktoken"
MODEL = "gpt-4o-mini"
START_TIMEOUT_S = 40.0
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
SIM_KEY = "sim"
PROXY_KEY = "bench-key"
WARM_ATTEMPTS = 30


class BenchError(RuntimeError):
    """A child did not start, or a measured request was not what it should be."""


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def failure(self, why: str) -> BenchError:
        tail = self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
        return BenchError(f"{self.name}: {why} (exit {self.popen.poll()})\n{tail}")


def _spawn(name: str, args: Sequence[str], workdir: Path) -> Child:
    env = {k: v for k, v in os.environ.items() if k != "SPENDGATE_CONFIG"}
    if TIKTOKEN_DIR.is_dir():
        env["SPENDGATE_TIKTOKEN_DIR"] = str(TIKTOKEN_DIR.resolve())
    env["PYTHONUNBUFFERED"] = "1"
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(REPO),
        )
    return Child(name, popen, log)


def _wait(child: Child, ready: Callable[[], str | None]) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise child.failure("exited during start-up")
        value = ready()
        if value:
            return value
        time.sleep(0.05)
    child.stop()
    raise child.failure(f"not ready after {START_TIMEOUT_S} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening_inodes(port: int) -> set[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "0A":
                inodes.add(int(fields[9]))
    return inodes


def _owns(pid: int, inodes: set[int]) -> bool:
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = str(fd.readlink())
        except OSError:
            continue
        if link.startswith("socket:[") and int(link[8:-1]) in inodes:
            return True
    return False


def start_simulator(workdir: Path) -> tuple[Child, str]:
    child = _spawn("simulator", ["-m", "proxy.demo.simulator", "--port", "0"], workdir)
    marker = "simulated provider listening on "

    def listening() -> str | None:
        for line in child.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(marker):
                return line[len(marker) :].strip()
        return None

    return child, _wait(child, listening)


def launch_proxy(
    workdir: Path, name: str, sim_url: str, cache: dict[str, Any]
) -> tuple[Child, str]:
    """Start a proxy; wait for it with :func:`wait_proxy`."""
    config = {
        "providers": {
            "openai": {"type": "openai", "base_url": sim_url + "/v1", "api_key": SIM_KEY}
        },
        "models": [{"name": MODEL, "provider": "openai", "tier": "small"}],
        "routing": {"mode": "off"},
        "ledger": {"url": f"sqlite:///{workdir / (name + '.db')}"},
        "auth": {"keys": [{"key": PROXY_KEY, "tenant": "bench"}]},
        "cache": cache,
    }
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    port = _free_port()
    args = ["-m", "proxy.cli", "serve", "--config", str(path), "--port", str(port)]
    return _spawn(name, args, workdir), f"http://127.0.0.1:{port}"


def wait_proxy(child: Child, url: str) -> None:
    """Ready when this child (not some other process) listens and /healthz answers."""
    port = int(url.rpartition(":")[2])

    def ready() -> str | None:
        if not _owns(child.popen.pid, _listening_inodes(port)):
            return None
        try:
            return "ok" if httpx.get(url + "/healthz", timeout=1.0).status_code == 200 else None
        except httpx.HTTPError:
            return None

    _wait(child, ready)


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    key: str
    proxied: bool  # answers carry x-spendgate-cache; each should be an exact hit


@dataclass(frozen=True)
class Summary:
    target: str
    n: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    misses: int  # proxied answers that did not come from the cache


def percentile(sorted_ms: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sample."""
    rank = max(1, math.ceil(q / 100 * len(sorted_ms)))
    return sorted_ms[min(rank, len(sorted_ms)) - 1]


def summarise(name: str, samples_ms: list[float], misses: int) -> Summary:
    ordered = sorted(samples_ms)
    return Summary(
        target=name,
        n=len(ordered),
        p50_ms=percentile(ordered, 50),
        p99_ms=percentile(ordered, 99),
        mean_ms=sum(ordered) / len(ordered),
        min_ms=ordered[0],
        misses=misses,
    )


def one_request(client: httpx.Client, target: Target, body: dict[str, Any]) -> tuple[float, bool]:
    """Milliseconds for one complete answer, and whether it missed the cache."""
    start = time.perf_counter_ns()
    response = client.post(
        target.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {target.key}"},
    )
    response.read()
    elapsed_ms = (time.perf_counter_ns() - start) / 1e6
    if response.status_code != 200:
        raise BenchError(f"{target.name}: HTTP {response.status_code}: {response.text[:300]}")
    # A lookup over its time budget (lookup_timeout_ms) answers as a miss; that
    # is what a client would see, so it stays in the sample and is counted.
    missed = target.proxied and response.headers.get("x-spendgate-cache") != "exact"
    return elapsed_ms, missed


def measure(
    targets: Sequence[Target], body: dict[str, Any], *, n: int, warmup: int
) -> list[Summary]:
    """Interleaved sequential requests, one keep-alive client per target."""
    clients = {t.name: httpx.Client(timeout=10.0) for t in targets}
    samples: dict[str, list[float]] = {t.name: [] for t in targets}
    misses = dict.fromkeys(samples, 0)
    try:
        for i in range(warmup + n):
            for target in targets:
                elapsed, missed = one_request(clients[target.name], target, body)
                if i >= warmup:
                    samples[target.name].append(elapsed)
                    misses[target.name] += missed
    finally:
        for client in clients.values():
            client.close()
    return [summarise(t.name, samples[t.name], misses[t.name]) for t in targets]


def table(summaries: Sequence[Summary], reference: Summary) -> str:
    """Latencies, then each target against the reference: difference and ratio."""
    head = f"{'target':<18}{'n':>6}{'misses':>8}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}"
    head += f"{'p50 vs direct':>16}{'p99 vs direct':>16}"
    lines = [head, "-" * len(head)]
    for s in summaries:
        row = f"{s.target:<18}{s.n:>6}{s.misses:>8}"
        row += f"{s.p50_ms:>9.3f}{s.p99_ms:>9.3f}{s.mean_ms:>9.3f}"
        if s is reference:
            row += f"{'(reference)':>16}"
        else:
            row += f"{_versus(s.p50_ms, reference.p50_ms):>16}"
            row += f"{_versus(s.p99_ms, reference.p99_ms):>16}"
        lines.append(row)
    return "\n".join(lines)


def _versus(value: float, reference: float) -> str:
    return f"{value - reference:+.3f} x{value / reference:.2f}"


def comparisons(summaries: Sequence[Summary], reference: Summary) -> dict[str, dict[str, float]]:
    return {
        s.target: {
            "p50_diff_ms": s.p50_ms - reference.p50_ms,
            "p99_diff_ms": s.p99_ms - reference.p99_ms,
            "p50_ratio": s.p50_ms / reference.p50_ms,
            "p99_ratio": s.p99_ms / reference.p99_ms,
        }
        for s in summaries
        if s is not reference
    }


def delete_prefix(prefix: str) -> None:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def warm(url: str, body: dict[str, Any]) -> None:
    """Store the answer and wait until a request for it is an exact hit."""
    headers = {"authorization": f"Bearer {PROXY_KEY}"}
    with httpx.Client(timeout=10.0, headers=headers) as client:
        for _ in range(WARM_ATTEMPTS):
            response = client.post(url + "/v1/chat/completions", json=body)
            if response.status_code != 200:
                raise BenchError(f"{url}: warm-up got HTTP {response.status_code}")
            if response.headers.get("x-spendgate-cache") == "exact":
                return
            time.sleep(0.1)
    raise BenchError(f"{url}: no exact hit after {WARM_ATTEMPTS} identical requests")


def run(n: int, warmup: int, workdir: Path, *, lookup_timeout_ms: int | None) -> dict[str, Any]:
    """Start everything, measure, stop everything; the results as JSON-ready data."""
    prefix = f"bench:cache-latency:{uuid.uuid4().hex}:"
    redis_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    timeout = {} if lookup_timeout_ms is None else {"lookup_timeout_ms": lookup_timeout_ms}
    caches = {
        "hit memory": {"backend": "memory", **timeout},
        "hit redis": {"backend": "redis", "redis_url": redis_url, "prefix": prefix, **timeout},
    }
    children: list[Child] = []
    try:
        sim, sim_url = start_simulator(workdir)
        children.append(sim)
        targets = [Target("simulator direct", sim_url, SIM_KEY, proxied=False)]
        launched = []
        for index, (name, cache) in enumerate(caches.items()):
            child, url = launch_proxy(workdir, f"proxy-{index}", sim_url, cache)
            children.append(child)
            launched.append((child, url))
            targets.append(Target(name, url, PROXY_KEY, proxied=True))
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"Benchmark question {prefix}"}],
        }
        for child, url in launched:
            wait_proxy(child, url)
            warm(url, body)
        summaries = measure(targets, body, n=n, warmup=warmup)
    finally:
        for child in reversed(children):
            child.stop()
        delete_prefix(prefix)
    reference = summaries[0]
    return {
        "n": n,
        "warmup": warmup,
        "model": MODEL,
        "lookup_timeout_ms": lookup_timeout_ms,
        "results": [asdict(s) for s in summaries],
        "versus_direct": comparisons(summaries, reference),
        "table": table(summaries, reference),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cache_latency", description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="measured requests per target")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests per target")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--lookup-timeout-ms",
        type=int,
        help="cache.lookup_timeout_ms for both proxies (default: the config default)",
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.warmup < 0:
        parser.error("--n must be positive and --warmup not negative")
    probe = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=1)
    try:
        probe.ping()
    except redis.RedisError as exc:
        print(f"Redis at {REDIS_HOST}:{REDIS_PORT} is unreachable: {exc}", file=sys.stderr)
        return 2
    finally:
        probe.close()
    with tempfile.TemporaryDirectory(prefix="cache-latency-") as tmp:
        result = run(args.n, args.warmup, Path(tmp), lookup_timeout_ms=args.lookup_timeout_ms)
    print(result["table"])
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
