"""The benchmark's child processes: fake upstreams, proxies, the load generator.

Every child is ``python -m ...`` with its output in files under the run's
work directory, pinned to a CPU with ``taskset`` when the machine has at
least two (the proxy on one, load generator and upstream on the other), so
the proxy's numbers are those of one core it has to itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.load import Kind

REPO = Path(__file__).resolve().parents[1]
TIKTOKEN_DIR = REPO / "tests" / "fixtures" / "tiktoken"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
PROXY_CPU = 0
CLIENT_CPU = 1


class BenchError(RuntimeError):
    """A child process failed to start, or a load run failed."""


def cpu_prefix(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` when pinning is possible here, else nothing."""
    if cpu is None or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(cpu)]


def child_env() -> dict[str, str]:
    """Our environment minus any Spendgate config, plus the offline tiktoken files."""
    env = {k: v for k, v in os.environ.items() if k != "SPENDGATE_CONFIG"}
    if TIKTOKEN_DIR.is_dir():
        env["SPENDGATE_TIKTOKEN_DIR"] = str(TIKTOKEN_DIR.resolve())
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    """A running child process that listens on ``port``."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def describe(self) -> str:
        err = self.stderr_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        return f"{self.name} (exit code {self.popen.poll()})\n--- stderr ---\n{err}"

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited in time; the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=STOP_TIMEOUT_S)
        return self.popen.returncode


def spawn(name: str, args: Sequence[str], *, workdir: Path, cpu: int | None, port: int) -> Service:
    """Start ``python args...`` (pinned to ``cpu``) with output captured to files."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, err = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    with out.open("wb") as out_file, err.open("wb") as err_file:
        popen = subprocess.Popen(
            [*cpu_prefix(cpu), sys.executable, *args],
            stdout=out_file,
            stderr=err_file,
            stdin=subprocess.DEVNULL,
            env=child_env(),
            cwd=str(workdir),
        )
    return Service(name, popen, port, out, err)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_healthy(service: Service, path: str = "/healthz") -> Service:
    """Poll ``path`` until it answers 200; raise with the child's stderr otherwise."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if service.popen.poll() is not None:
            raise BenchError(f"{service.name} exited during start-up\n{service.describe()}")
        if _http_ok(service.url(path)):
            return service
        time.sleep(0.05)
    service.stop()
    raise BenchError(f"{service.name} not ready after {START_TIMEOUT_S} s\n{service.describe()}")


def start_upstream(
    workdir: Path,
    *,
    name: str,
    delay_ms: float = 0.0,
    fail_rate: float = 0.0,
    cpu: int | None = CLIENT_CPU,
) -> Service:
    """A ``bench.upstream`` process on the client CPU (``cpu=None``: any)."""
    port = free_port()
    args = ["-m", "bench.upstream", "--port", str(port), "--delay-ms", str(delay_ms)]
    args += ["--fail-rate", str(fail_rate)]
    return wait_healthy(spawn(name, args, workdir=workdir, cpu=cpu, port=port))


def start_proxy(
    workdir: Path,
    config: Mapping[str, Any],
    *,
    name: str,
    workers: int = 1,
    cpu: int | None = PROXY_CPU,
) -> Service:
    """``python -m proxy.cli serve`` on the proxy CPU (``cpu=None``: any); see ``wait_healthy``."""
    path = workdir / f"{name}.json"
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    port = free_port()
    args = ["-m", "proxy.cli", "serve", "--config", str(path), "--port", str(port)]
    args += ["--workers", str(workers)] if workers > 1 else []
    return spawn(name, args, workdir=workdir, cpu=cpu, port=port)


def start_floor(workdir: Path, *, upstream: Service, name: str = "floor") -> Service:
    """The bare pass-through app (``bench.floor``) on the proxy CPU; see ``wait_healthy``."""
    port = free_port()
    args = ["-m", "bench.floor", "--port", str(port), "--upstream", upstream.url("/v1")]
    return spawn(name, args, workdir=workdir, cpu=PROXY_CPU, port=port)


def rss_mib(pid: int) -> float | None:
    """The process's resident set size (``VmRSS``) in MiB, None when unreadable."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time the process (all its threads) has used so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(
    url: str,
    kinds: Sequence[Kind],
    *,
    concurrency: int,
    requests: int | None = None,
    duration_s: float | None = None,
    warmup: int = 0,
    key: str | None = None,
) -> dict[str, Any]:
    """Run ``bench.load`` in its own process on the client CPU; its JSON summary."""
    args = [
        *cpu_prefix(CLIENT_CPU), sys.executable, "-m", "bench.load",
        "--url", url, "--spec", json.dumps([asdict(k) for k in kinds]),
        "--concurrency", str(concurrency), "--warmup", str(warmup),
    ]  # fmt: skip
    args += ["--requests", str(requests)] if requests is not None else []
    args += ["--duration", str(duration_s)] if duration_s is not None else []
    args += ["--key", key] if key else []
    budget = (duration_s or 0) + 300
    done = subprocess.run(args, capture_output=True, env=child_env(), timeout=budget, check=False)
    if done.returncode != 0:
        raise BenchError(
            f"load generator failed ({done.returncode}): {done.stderr.decode()[-3000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout)
    return result
