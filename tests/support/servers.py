"""The servers the end-to-end tests run: the simulated provider and ``spendgate serve``.

The simulator prints ``simulated provider listening on http://HOST:PORT`` once
it serves; its control endpoints arm faults, reset and report counters. A
proxy counts as started once its own process listens on its port (a port
picked free can be taken by someone else first; the child then exits and is
started again on another port), every worker of ``--workers N`` shares the
socket and ``/healthz`` answers. Its ledger is complete once it has stopped:
SIGTERM flushes it.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from pricing.ledger import open_ledger
from pricing.ledger.row import LedgerRow
from tests.support.processes import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    Process,
    StartupError,
    free_port,
    healthy,
    python_module,
    spawn,
    wait_until,
)
from tests.support.sockets import children_of, listens_on

LISTENING_MARKER = "simulated provider listening on "
CHAT_PATH = "/v1/chat/completions"
CONTROL_TIMEOUT_S = 5.0


def listening_url(process: Process) -> str | None:
    """The URL of the simulator's listening line, once it has printed one."""
    for line in process.stdout().splitlines():
        if line.startswith(LISTENING_MARKER):
            return line[len(LISTENING_MARKER) :].strip()
    return None


@dataclass
class Simulator:
    """A simulated provider process and its control endpoints."""

    process: Process
    base_url: str  # the root, as Anthropic clients want it

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def arm(self, mode: str, *, count: int = 1, model: str | None = None, **extra: int) -> None:
        """Give the next ``count`` requests (for upstream ``model``) the fault ``mode``."""
        body: dict[str, Any] = {"mode": mode, "count": count, **extra}
        if model is not None:
            body["model"] = model
        url = f"{self.base_url}/_sim/faults"
        httpx.post(url, json=body, timeout=CONTROL_TIMEOUT_S).raise_for_status()

    def reset(self) -> None:
        """Zero the counters and disarm every fault."""
        httpx.post(f"{self.base_url}/_sim/reset", timeout=CONTROL_TIMEOUT_S).raise_for_status()

    def stats(self) -> dict[str, Any]:
        """The simulator's counters since it started or was last reset."""
        response = httpx.get(f"{self.base_url}/_sim/stats", timeout=CONTROL_TIMEOUT_S)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def calls(self, model: str) -> int:
        """Requests seen for upstream ``model`` since start or the last reset."""
        count: int = self.stats()["by_model"].get(model, 0)
        return count

    def chat_calls(self) -> int:
        """Chat completions answered since start or the last reset."""
        count: int = self.stats()["by_endpoint"].get(CHAT_PATH, 0)
        return count


def start_simulator(
    workdir: Path,
    *,
    name: str = "simulator",
    hold_s: float | None = None,
    delay_ms: int | None = None,
    env: Mapping[str, str] | None = None,
    stop_timeout_s: float = STOP_TIMEOUT_S,
) -> Simulator:
    """``python -m proxy.demo.simulator --port 0``; waits for its listening line.

    ``hold_s`` is how long its ``timeout`` fault holds a request, ``delay_ms``
    the latency it adds to every answer; unset, the simulator's own defaults.
    """
    args = ["--port", "0"]
    if hold_s is not None:
        args += ["--timeout-s", str(hold_s)]
    if delay_ms is not None:
        args += ["--delay-ms", str(delay_ms)]
    argv = python_module("proxy.demo.simulator", *args)
    process = spawn(name, argv, workdir=workdir, env=env, stop_timeout_s=stop_timeout_s)
    return Simulator(process, wait_until(process, functools.partial(listening_url, process)))


@dataclass
class Proxy:
    """A ``spendgate serve`` process on ``port``."""

    process: Process
    port: int
    ledger_url: str  # empty when the config names no ledger

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def workdir(self) -> Path:
        return self.process.workdir

    def stop(self) -> int:
        """SIGTERM (which flushes the ledger), SIGKILL if it hangs; the exit code."""
        return self.process.stop()

    def metrics(self) -> str:
        """The text of ``GET /metrics``."""
        response = httpx.get(f"{self.base_url}/metrics", timeout=5.0)
        response.raise_for_status()
        return response.text

    def workers(self) -> list[int]:
        """The worker processes under ``--workers N`` (empty for one process).

        Only children listening on the port count: the supervisor
        may have others (a multiprocessing resource tracker).
        """
        return [pid for pid in children_of(self.process.pid) if listens_on(pid, self.port)]

    def rows(self) -> list[LedgerRow]:
        """Every ledger row written so far (all of them once ``stop`` has flushed)."""
        return ledger_rows(self.ledger_url)


P = TypeVar("P", bound=Proxy)


class ProxyLaunch(Generic[P]):
    """A ``spendgate serve`` on its way up; several can start side by side.

    Start-up costs seconds (imports, and each worker of ``--workers N`` does
    them again), so tests that need several proxies launch them together and
    then wait for each. ``kind`` is the :class:`Proxy` class to hand back.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        workdir: Path,
        *,
        kind: type[P],
        name: str = "proxy",
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self.name = name
        self._kind = kind
        self._workdir = workdir
        self._workers = workers
        self._env = env
        self._stop_timeout_s = stop_timeout_s
        self._ledger_url = str(config.get("ledger", {}).get("url", ""))
        workdir.mkdir(parents=True, exist_ok=True)
        self._config_path = workdir / f"{name}-{uuid.uuid4().hex[:8]}.json"
        self._config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        self._proxy = self._spawn()

    def _spawn(self) -> P:
        port = free_port()
        args = ["serve", "--config", str(self._config_path), "--port", str(port)]
        if self._workers > 1:
            args += ["--workers", str(self._workers)]
        process = spawn(
            self.name,
            python_module("proxy.cli", *args),
            workdir=self._workdir,
            env=self._env,
            stop_timeout_s=self._stop_timeout_s,
        )
        return self._kind(process, port, self._ledger_url)

    def wait(self, *, attempts: int = 3, timeout_s: float = START_TIMEOUT_S) -> P:
        """The proxy once it is ready; a child that exits during start-up (its port
        was taken before it bound it) is started again on another port."""
        for attempt in range(1, attempts + 1):
            proxy = self._proxy
            try:
                ready = functools.partial(_serving, proxy, self._workers)
                wait_until(proxy.process, ready, timeout_s=timeout_s)
            except StartupError as exc:
                if not exc.exited or attempt == attempts:
                    raise
                self._proxy = self._spawn()
                continue
            return proxy
        raise AssertionError("unreachable: the last attempt returns or raises")

    def stop(self) -> None:
        """Stop the current child, whether or not it ever became ready."""
        self._proxy.stop()


def start_proxy(
    config: Mapping[str, Any],
    workdir: Path,
    *,
    kind: type[P],
    name: str = "proxy",
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    stop_timeout_s: float = STOP_TIMEOUT_S,
) -> P:
    """Write ``config`` as JSON, serve it on a free port and wait until it is ready."""
    launch = ProxyLaunch(
        config,
        workdir,
        kind=kind,
        name=name,
        workers=workers,
        env=env,
        stop_timeout_s=stop_timeout_s,
    )
    try:
        return launch.wait()
    except BaseException:
        launch.stop()
        raise


def _serving(proxy: Proxy, workers: int) -> bool:
    # Under --workers N each worker listens on a socket of its own (SO_REUSEPORT) and
    # the supervisor's socket only holds the port; one process listens itself.
    if workers > 1:
        if len(proxy.workers()) < workers:
            return False
    elif not listens_on(proxy.process.pid, proxy.port):
        return False
    return healthy(proxy.base_url)


def ledger_rows(url: str) -> list[LedgerRow]:
    """Every row of the ledger at ``url``, in chain order."""
    store = open_ledger(url, create=False)
    try:
        return list(store.iter_chain())
    finally:
        store.close()
