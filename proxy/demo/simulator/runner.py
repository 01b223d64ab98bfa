"""Running the simulator: in-process for tests, or as a served process.

``run_simulator`` serves on a socket bound before the server starts, so a
``port=0`` caller learns the free port the system picked without any race.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from proxy.demo.simulator.app import SimulatorApp, build_app
from proxy.demo.simulator.faults import Fault, parse_mode
from proxy.demo.simulator.state import SimConfig

# Long enough for answers in flight, short enough that a held ``timeout``
# request never stalls a test's teardown.
GRACEFUL_SHUTDOWN_S = 1
# Longer than the proxy keeps idle upstream connections (60 s), as hosted APIs'
# idle timeouts are: with uvicorn's 5 s, a request sent as the simulator closes an
# idle connection meets the close, and a fault test's attempt count moves by one.
KEEP_ALIVE_S = 75


@dataclass(frozen=True, slots=True)
class SimulatorHandle:
    """A running simulator: where it listens and a direct line to its state."""

    host: str
    port: int
    app: SimulatorApp

    @property
    def base_url(self) -> str:
        """The root URL, e.g. Anthropic clients' ``base_url``."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The OpenAI clients' ``base_url`` (the root plus ``/v1``)."""
        return self.base_url + "/v1"

    def arm(
        self, mode: str, *, count: int = 1, model: str | None = None, delay_ms: int = 200
    ) -> None:
        """The in-process twin of ``POST /_sim/faults``."""
        self.app.state.faults.arm(
            Fault(parse_mode(mode), delay_ms=delay_ms), count=count, model=model
        )

    def stats(self) -> dict[str, Any]:
        """The in-process twin of ``GET /_sim/stats``."""
        return self.app.state.stats.as_json()

    def reset(self) -> None:
        """The in-process twin of ``POST /_sim/reset``."""
        self.app.state.reset()


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (``port=0``: any free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The explicit protocol matters: asyncio sets TCP_NODELAY on accepted
    # connections only when the listening socket says IPPROTO_TCP, and without
    # it every answer written in two parts waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def make_server(app: SimulatorApp, *, log_level: str = "warning") -> uvicorn.Server:
    """A quiet uvicorn server for ``app``."""
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    return uvicorn.Server(config)


@contextlib.asynccontextmanager
async def run_simulator(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    delay_ms: int = 0,
    timeout_s: float = 30.0,
    require_auth: bool = True,
) -> AsyncIterator[SimulatorHandle]:
    """Serve a fresh simulator in the running event loop until the block exits.

    >>> async with run_simulator() as sim:  # doctest: +SKIP
    ...     client = openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="k")
    """
    app = build_app(SimConfig(delay_ms=delay_ms, timeout_s=timeout_s, require_auth=require_auth))
    sock = bind_socket(host, port)
    server = make_server(app)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # start-up failed: surface why
                raise RuntimeError("the simulator stopped during start-up")
            await asyncio.sleep(0.01)
        yield SimulatorHandle(host, sock.getsockname()[1], app)
    finally:
        app.state.stopping.set()
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()
