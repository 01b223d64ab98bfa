"""A private ``redis-server`` child: no persistence, killable, restartable on its port."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.processes import Process, free_port, spawn, wait_until

START_TIMEOUT_S = 10.0


@dataclass
class RedisServer:
    """A ``redis-server`` on ``port``; :meth:`start` again after :meth:`kill` restarts it empty."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Process:
        """Start it and wait until it answers PING; the new process."""
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = spawn(f"redis-{self.port}", argv, workdir=self.workdir)
        wait_until(self.process, self.answers, timeout_s=START_TIMEOUT_S)
        return self.process

    def answers(self) -> bool:
        """Whether a PING on the port gets its answer."""
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
