"""Child processes for the end-to-end tests: start, wait for readiness, stop.

A child's stdout and stderr go to files in its work folder: a pipe nobody
reads would eventually block it. Start-up waits are bounded, and a child that
does not come up fails the test with its own output. Teardown is SIGTERM
(a proxy flushes its ledger on it), then SIGKILL if the child lingers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
TIKTOKEN_DIR = REPO / "tests" / "fixtures" / "tiktoken"
# Generous: a loaded machine imports slowly, and a child that never comes up
# fails the test anyway.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
# What a failure message shows of each output stream: its end, where the error is.
OUTPUT_TAIL_CHARS = 8000
# Settings a developer's shell may hold that must not reach a child: provider
# keys (no real provider is ever called), a multiprocess metrics folder of
# another run, and every SPENDGATE_* setting (each test says what it wants).
_DROPPED_VARIABLES = frozenset({"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "PROMETHEUS_MULTIPROC_DIR"})


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (someone may take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(*, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment for a child: without provider keys or Spendgate settings, plus
    the shared tiktoken files, the repository on the import path, unbuffered output
    and ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _DROPPED_VARIABLES and not k.startswith("SPENDGATE_")
    }
    if TIKTOKEN_DIR.is_dir():
        env["SPENDGATE_TIKTOKEN_DIR"] = str(TIKTOKEN_DIR.resolve())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def python_module(module: str, *args: str) -> list[str]:
    """``python -m module args...`` with the interpreter running the tests."""
    return [sys.executable, "-m", module, *args]


def _tail(text: str) -> str:
    return text if len(text) <= OUTPUT_TAIL_CHARS else "..." + text[-OUTPUT_TAIL_CHARS:]


@dataclass
class Process:
    """A child process whose stdout and stderr go to files in its work folder."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    stop_timeout_s: float = STOP_TIMEOUT_S

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def workdir(self) -> Path:
        """The folder the child runs in and writes its output to."""
        return self.stdout_path.parent

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def describe(self) -> str:
        """Name, exit code and the end of both outputs, for a failure message."""
        return (
            f"{self.name} (exit code {self.popen.poll()})\n"
            f"--- stdout ---\n{_tail(self.stdout())}\n--- stderr ---\n{_tail(self.stderr())}"
        )

    def stop(self, *, timeout_s: float | None = None) -> int:
        """SIGTERM and wait, SIGKILL if it is still there after ``timeout_s``; the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=self.stop_timeout_s if timeout_s is None else timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.wait(timeout=STOP_TIMEOUT_S)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to connected clients."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=STOP_TIMEOUT_S)


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stop_timeout_s: float = STOP_TIMEOUT_S,
) -> Process:
    """Start ``argv`` with output in ``workdir/<name>-<tag>.stdout`` and ``.stderr``.

    The tag is fresh for every child, so children of one name in one folder
    never share files and a readiness line found in them is this child's.
    ``env`` defaults to :func:`child_env`; ``cwd`` to ``workdir``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{uuid.uuid4().hex[:8]}"
    out, err = workdir / f"{stem}.stdout", workdir / f"{stem}.stderr"
    with out.open("wb") as out_file, err.open("wb") as err_file:
        popen = subprocess.Popen(
            list(argv),
            stdout=out_file,
            stderr=err_file,
            stdin=subprocess.DEVNULL,
            env=child_env() if env is None else dict(env),
            cwd=str(cwd or workdir),
        )
    return Process(name, popen, out, err, stop_timeout_s)


class StartupError(RuntimeError):
    """A child process did not become ready: it exited, or it took too long."""

    def __init__(self, message: str, *, exited: bool) -> None:
        super().__init__(message)
        self.exited = exited


def wait_until(
    process: Process, ready: Callable[[], T | None], *, timeout_s: float = START_TIMEOUT_S
) -> T:
    """Poll ``ready()`` until it gives a truthy value; raise with the child's output otherwise.

    A child still not ready at the deadline is killed: it is broken, and its
    output (unbuffered) is already in its files.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise StartupError(
                f"{process.name} exited during start-up\n{process.describe()}", exited=True
            )
        value = ready()
        if value:
            return value
        time.sleep(0.05)
    process.kill()
    raise StartupError(
        f"{process.name} not ready after {timeout_s} s\n{process.describe()}", exited=False
    )


def healthy(base_url: str) -> bool:
    """Whether ``GET {base_url}/healthz`` answers 200."""
    try:
        return httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
