"""The real processes behind the browser test: the simulated provider and the proxy."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parents[2]
TIKTOKEN_DIR = REPO / ".." / "shared" / "data" / "tiktoken"
START_TIMEOUT_S = 20.0
T = TypeVar("T")


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def describe(self) -> str:
        err = self.err.read_text(encoding="utf-8", errors="replace")
        return f"{self.name} exited {self.popen.poll()}\n{self.stdout()}\n{err}"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


def spawn(name: str, args: list[str], workdir: Path) -> Child:
    env = {k: v for k, v in os.environ.items() if k != "SPENDGATE_CONFIG"}
    env["PYTHONUNBUFFERED"] = "1"
    if TIKTOKEN_DIR.is_dir():
        env["SPENDGATE_TIKTOKEN_DIR"] = str(TIKTOKEN_DIR.resolve())
    out, err = workdir / f"{name}.out", workdir / f"{name}.err"
    with out.open("wb") as o, err.open("wb") as e:
        popen = subprocess.Popen(
            [sys.executable, *args], stdout=o, stderr=e, stdin=subprocess.DEVNULL,
            env=env, cwd=str(REPO),
        )  # fmt: skip
    return Child(name, popen, out, err)


def wait_for(child: Child, ready: Callable[[], T | None], timeout_s: float = START_TIMEOUT_S) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise RuntimeError(child.describe())
        value = ready()
        if value:
            return value
        time.sleep(0.05)
    child.stop()
    raise RuntimeError(f"not ready in {timeout_s} s: {child.describe()}")


def start_simulator(workdir: Path) -> tuple[Child, str]:
    """``python -m proxy.simulator --port 0``; its base URL from the listening line."""
    child = spawn("simulator", ["-m", "proxy.simulator", "--port", "0"], workdir)
    marker = "simulated provider listening on "

    def url() -> str | None:
        for line in child.stdout().splitlines():
            if line.startswith(marker):
                return line[len(marker) :].strip()
        return None

    return child, wait_for(child, url)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_proxy(config: dict[str, Any], workdir: Path) -> tuple[Child, str]:
    """``python -m proxy.cli serve`` on a free port (retried if the port was taken)."""
    path = workdir / "proxy.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    last: RuntimeError | None = None
    for attempt in range(3):
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        args = ["-m", "proxy.cli", "serve", "--config", str(path), "--port", str(port)]
        child = spawn(f"proxy{attempt}", args, workdir)
        try:
            wait_for(child, lambda b=base: _healthy(b))  # type: ignore[misc]
        except RuntimeError as exc:
            child.stop()
            last = exc
            continue
        return child, base
    assert last is not None
    raise last
