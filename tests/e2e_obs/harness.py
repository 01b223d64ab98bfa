"""Real processes for the observability checks: the simulated provider and the proxy.

Children write their output to files (a pipe nobody reads would eventually
block them) and run with ``TMPDIR`` pointed into the test's folder, so the
proxy's multiprocess metrics folder can be found and inspected.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
TIKTOKEN_DIR = REPO / ".." / "shared" / "data" / "tiktoken"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
SIM_KEY = "sim-key"


@dataclass
class Child:
    """A child process with its stdout and stderr in files."""

    name: str
    popen: subprocess.Popen[bytes]
    workdir: Path

    def output(self) -> str:
        parts = []
        for stream in ("stdout", "stderr"):
            path = self.workdir / f"{self.name}.{stream}"
            parts.append(f"--- {stream} ---\n{path.read_text(errors='replace')}")
        return f"{self.name} (exit code {self.popen.poll()})\n" + "\n".join(parts)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=STOP_TIMEOUT_S)


def child_env(tmpdir: Path) -> dict[str, str]:
    """Our environment minus provider keys and Spendgate settings, temp files in ``tmpdir``."""
    drop = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "PROMETHEUS_MULTIPROC_DIR")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SPENDGATE_")}
    if TIKTOKEN_DIR.is_dir():
        env["SPENDGATE_TIKTOKEN_DIR"] = str(TIKTOKEN_DIR.resolve())
    env["TMPDIR"] = str(tmpdir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(name: str, args: Sequence[str], *, workdir: Path) -> Child:
    workdir.mkdir(parents=True, exist_ok=True)
    tmpdir = workdir / "tmp"
    tmpdir.mkdir(exist_ok=True)
    with (
        open(workdir / f"{name}.stdout", "wb") as out,
        open(workdir / f"{name}.stderr", "wb") as err,
    ):
        popen = subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=child_env(tmpdir),
            cwd=workdir,
        )
    return Child(name, popen, workdir)


class StartupError(RuntimeError):
    """A child process did not become ready in time."""


def wait_for(
    child: Child, ready: Callable[[], T | None], *, timeout_s: float = START_TIMEOUT_S
) -> T:
    """Poll ``ready()`` until it returns a value; fail with the child's output otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise StartupError(f"{child.name} exited during start-up\n{child.output()}")
        value = ready()
        if value is not None:
            return value
        time.sleep(0.05)
    child.stop()
    raise StartupError(f"{child.name} not ready after {timeout_s} s\n{child.output()}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def healthy(base_url: str) -> bool | None:
    try:
        return True if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200 else None
    except httpx.HTTPError:
        return None
