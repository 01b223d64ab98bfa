"""Child processes and what the kernel says about their sockets.

Children run with their output in files, since a pipe nobody reads can block
a child. ``/proc`` tells which process holds which socket: a server counts as
started only once *its own* process listens on the port (a port picked free
can be taken by someone else first), and it shows how a burst of connections
spread over the workers of ``--workers N``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import redis

REPO = Path(__file__).resolve().parents[2]
TIKTOKEN_DIR = REPO / ".." / "shared" / "data" / "tiktoken"
STOP_TIMEOUT_S = 5.0
_LISTEN = "0A"
_ESTABLISHED = "01"

T = TypeVar("T")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` without any config pointer, plus the shared tiktoken files."""
    env = {k: v for k, v in base.items() if k != "SPENDGATE_CONFIG"}
    if TIKTOKEN_DIR.is_dir():
        env["SPENDGATE_TIKTOKEN_DIR"] = str(TIKTOKEN_DIR.resolve())
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Process:
    """A child process whose stdout and stderr go to files."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def output(self) -> str:
        out = self.stdout_path.read_text(encoding="utf-8", errors="replace")
        err = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return (
            f"{self.name} (exit {self.popen.poll()})\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=STOP_TIMEOUT_S)

    def kill(self) -> None:
        """SIGKILL, no chance to clean up."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=STOP_TIMEOUT_S)


def spawn(name: str, argv: Sequence[str], *, workdir: Path, env: Mapping[str, str]) -> Process:
    """Start ``argv`` in ``workdir`` with output captured to files."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, err = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    with out.open("ab") as out_file, err.open("ab") as err_file:
        popen = subprocess.Popen(
            list(argv),
            stdout=out_file,
            stderr=err_file,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=str(workdir),
        )
    return Process(name, popen, out, err)


class StartupError(RuntimeError):
    """A child process did not become ready in time."""


def wait_for(process: Process, ready: Callable[[], T | None], *, timeout_s: float) -> T:
    """Poll ``ready()`` until it gives a value; raise with the child's output otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise StartupError(f"exited during start-up: {process.output()}")
        value = ready()
        if value:
            return value
        time.sleep(0.05)
    process.stop()
    raise StartupError(f"not ready after {timeout_s} s: {process.output()}")


def _tcp_rows() -> Iterator[tuple[int, str, int]]:
    """(local port, state, inode) of every IPv4/IPv6 TCP socket on the machine."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            yield int(fields[1].rpartition(":")[2], 16), fields[3], int(fields[9])


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds open."""
    inodes: set[int] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return inodes
    for entry in entries:
        try:
            target = str(entry.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself holds the listening socket of ``port``."""
    mine = socket_inodes(pid)
    return any(p == port and s == _LISTEN and i in mine for p, s, i in _tcp_rows())


def children_of(pid: int) -> list[int]:
    """Direct child processes of ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def established_by_pid(port: int, pids: Sequence[int]) -> dict[int, int]:
    """How many accepted connections on ``port`` each of ``pids`` holds right now."""
    rows = [i for p, s, i in _tcp_rows() if p == port and s == _ESTABLISHED]
    return {pid: len(socket_inodes(pid).intersection(rows)) for pid in pids}


@dataclass
class RedisServer:
    """A private ``redis-server`` with no persistence, restartable on its port."""

    workdir: Path
    port: int
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = spawn(f"redis-{self.port}", argv, workdir=self.workdir, env={})
        wait_for(self.process, self.answers, timeout_s=10.0)

    def answers(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:
            return client.ping() is True
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """``kill -9``: no shutdown, no goodbye to connected clients."""
        if self.process is not None:
            self.process.kill()
