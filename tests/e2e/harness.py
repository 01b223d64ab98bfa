"""Real processes for the end-to-end tests: the simulated provider and the proxy.

Each runs as ``sys.executable -m ...`` with its output in files (a pipe nobody
reads would eventually block the child). Start-up waits are bounded; a
process that does not come up fails the test with its own stderr.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import httpx
import openai

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
TIKTOKEN_DIR = REPO / ".." / "shared" / "data" / "tiktoken"
START_TIMEOUT_S = 30.0  # generous: a loaded machine imports slowly
STOP_TIMEOUT_S = 5.0
SIM_KEY = "sim-key"
# How long the simulator's ``timeout`` fault holds a request: longer than the
# short read timeout the proxy is given, short enough not to stall teardown.
SIM_HOLD_S = 5.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique(text: str) -> str:
    """``text`` with a fresh tag, so the proxy's exact cache never answers it."""
    return f"[{uuid.uuid4().hex[:12]}] {text}"


def child_env(*, drop: Sequence[str] = ()) -> dict[str, str]:
    """The environment for a child process: ours, minus config and ``drop``."""
    env = {k: v for k, v in os.environ.items() if k not in ("SPENDGATE_CONFIG", *drop)}
    if TIKTOKEN_DIR.is_dir():
        env["SPENDGATE_TIKTOKEN_DIR"] = str(TIKTOKEN_DIR.resolve())
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Process:
    """A child process whose stdout and stderr go to files in ``workdir``."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def describe(self) -> str:
        return (
            f"{self.name} (exit code {self.popen.poll()})\n"
            f"--- stdout ---\n{self.stdout()}\n--- stderr ---\n{self.stderr()}"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within a few seconds."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=STOP_TIMEOUT_S)


def spawn(
    name: str,
    args: Sequence[str],
    *,
    workdir: Path,
    env: Mapping[str, str],
    cwd: Path | None = None,
) -> Process:
    """Start ``python args...`` with output captured to files."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, err = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    with out.open("wb") as out_file, err.open("wb") as err_file:
        popen = subprocess.Popen(
            [sys.executable, *args],
            stdout=out_file,
            stderr=err_file,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=str(cwd or workdir),
        )
    return Process(name, popen, out, err)


class StartupError(RuntimeError):
    """A child process did not become ready: it exited, or it took too long."""

    def __init__(self, message: str, *, exited: bool) -> None:
        super().__init__(message)
        self.exited = exited


def wait_until(
    process: Process,
    ready: Callable[[], T | None],
    *,
    timeout_s: float = START_TIMEOUT_S,
) -> T:
    """Poll ``ready()`` until it returns a truthy value; raise with stderr otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise StartupError(
                f"{process.name} exited during start-up\n{process.describe()}",
                exited=True,
            )
        value = ready()
        if value:
            return value
        time.sleep(0.05)
    process.stop()
    raise StartupError(
        f"{process.name} not ready after {timeout_s} s\n{process.describe()}",
        exited=False,
    )


def healthy(base_url: str) -> bool:
    """Whether ``GET {base_url}/healthz`` answers 200."""
    try:
        return httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Simulator:
    """The simulated provider process and its control endpoints."""

    process: Process
    base_url: str  # root, as Anthropic clients want it

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def arm(self, mode: str, *, count: int = 1, model: str | None = None) -> None:
        """Give the next ``count`` requests (for upstream ``model``) a fault."""
        body: dict[str, Any] = {"mode": mode, "count": count}
        if model is not None:
            body["model"] = model
        httpx.post(f"{self.base_url}/_sim/faults", json=body, timeout=5.0).raise_for_status()

    def reset(self) -> None:
        """Zero the counters and disarm every fault."""
        httpx.post(f"{self.base_url}/_sim/reset", timeout=5.0).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/_sim/stats", timeout=5.0)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats


def start_simulator(workdir: Path) -> Simulator:
    """Start ``python -m proxy.simulator --port 0`` and wait for its listening line."""
    process = spawn(
        "simulator",
        ["-m", "proxy.simulator", "--port", "0", "--timeout-s", str(SIM_HOLD_S)],
        workdir=workdir,
        env=child_env(),
    )
    marker = "simulated provider listening on "

    def listening() -> str | None:
        for line in process.stdout().splitlines():
            if line.startswith(marker):
                return line[len(marker) :].strip()
        return None

    url = wait_until(process, listening)
    return Simulator(process, url)


@dataclass
class Proxy:
    """A ``spendgate serve`` process."""

    process: Process
    base_url: str
    workdir: Path

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def ledger_row(self, request_id: str, *, timeout_s: float = 10.0) -> dict[str, Any]:
        """The ledger row of ``request_id``, once the proxy's writer has stored it."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.closing(sqlite3.connect(self.workdir / "ledger.db")) as db:
                db.row_factory = sqlite3.Row
                try:
                    row = db.execute(
                        "SELECT * FROM ledger_rows WHERE request_id = ?", (request_id,)
                    ).fetchone()
                except sqlite3.OperationalError:  # the table is not there yet
                    row = None
            if row is not None:
                return dict(row)
            if time.monotonic() > deadline:
                raise AssertionError(f"no ledger row for {request_id} after {timeout_s} s")
            time.sleep(0.05)


@dataclass
class Launch:
    """A proxy process started but not yet known to be ready."""

    name: str
    config_path: Path
    workdir: Path
    process: Process
    base_url: str


def _spawn_proxy(name: str, config_path: Path, workdir: Path) -> Launch:
    port = free_port()
    process = spawn(
        name,
        ["-m", "proxy.cli", "serve", "--config", str(config_path), "--port", str(port)],
        workdir=workdir,
        env=child_env(),
    )
    return Launch(name, config_path, workdir, process, f"http://127.0.0.1:{port}")


def launch_proxy(config: Mapping[str, Any], workdir: Path, *, name: str = "proxy") -> Launch:
    """Write ``config`` as JSON and start serving it on a free port; do not wait."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / f"{name}.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return _spawn_proxy(name, config_path, workdir)


def await_proxy(launch: Launch, *, attempts: int = 3) -> Proxy:
    """Wait for ``/healthz`` of a launched proxy.

    A port picked free can be taken before the child binds it, so a child
    that exits during start-up is started again on another port.
    """
    for attempt in range(1, attempts + 1):
        try:
            wait_until(launch.process, functools.partial(healthy, launch.base_url))
        except StartupError as exc:
            if not exc.exited or attempt == attempts:
                raise
            launch = _spawn_proxy(launch.name, launch.config_path, launch.workdir)
            continue
        return Proxy(launch.process, launch.base_url, launch.workdir)
    raise AssertionError("unreachable: the last attempt returns or raises")


def start_proxy(config: Mapping[str, Any], workdir: Path, *, name: str = "proxy") -> Proxy:
    """Serve ``config`` and wait until it answers."""
    return await_proxy(launch_proxy(config, workdir, name=name))


def sse_data(body: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [line[len("data:") :].strip() for line in body.splitlines() if line.startswith("data:")]


def upstream_calls(sim: Simulator, model: str) -> int:
    """Requests the simulator has had for upstream ``model`` since its last reset."""
    count: int = sim.stats()["by_model"].get(model, 0)
    return count


def _strip_credentials(request: Any) -> None:
    for name in ("authorization", "x-api-key"):
        request.headers.pop(name, None)


def keyless_http_client(factory: Callable[..., T]) -> T:
    """An SDK's HTTP client (``factory``: its ``DefaultHttpxClient``) that sends no credentials.

    The SDKs refuse to start without an api_key; this drops it from every request.
    """
    return factory(event_hooks={"request": [_strip_credentials]})


def error_message(exc: Any) -> str:
    """The ``message`` of an SDK status error's body (the SDKs prefix their own text)."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]  # Anthropic's shape keeps the envelope
    assert isinstance(body, dict), f"no JSON error body: {exc!r}"
    message = body["message"]
    assert isinstance(message, str)
    return message


def anthropic_message(sim: Simulator, **params: Any) -> anthropic.types.Message:
    """The simulator's own Messages API answer, through the anthropic SDK."""
    with (
        anthropic.Anthropic(base_url=sim.base_url, api_key=SIM_KEY, max_retries=0) as client,
        # The SDK warns of some models' retirement dates; not these tests' concern.
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", DeprecationWarning)
        message: anthropic.types.Message = client.messages.create(**params)
    return message


OPENAI_MODEL = "gpt-4o"
CLAUDE_MODEL = "claude-sonnet"
CLAUDE_UPSTREAM = "claude-sonnet-4-5"


def direct_text(sim: Simulator, model: str, prompt: str) -> str:
    """The simulator's own answer to ``prompt``, through the matching official SDK."""
    if model == CLAUDE_MODEL:
        message = anthropic_message(
            sim,
            model=CLAUDE_UPSTREAM,
            max_tokens=1024,
            messages=[{"role": "user", "content": prompt}],
        )
        block = message.content[0]
        assert block.type == "text"
        return block.text
    with openai.OpenAI(base_url=sim.openai_base_url, api_key=SIM_KEY, max_retries=0) as client:
        completion = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}]
        )
    text = completion.choices[0].message.content
    assert text is not None
    return text


def raw_stream(proxy: Proxy, body: dict[str, Any]) -> tuple[httpx.Response, list[str]]:
    """POST a streamed chat request with plain httpx: the answer and its ``data:`` payloads."""
    with httpx.Client(timeout=10.0) as http:
        response = http.post(
            f"{proxy.openai_base_url}/chat/completions",
            json=body,
            headers={"authorization": "Bearer any"},
        )
    return response, sse_data(response.text)
