"""The ledger writer's backend in a separate process (the proxy's default).

Checking rows, hash-chaining them, folding rollups, SQL and formatting
access lines all hold the GIL; in a thread they would make the event loop
wait. :class:`ProcessBackend` sends each batch to the writer process
(``proxy.server.ledger_worker``) over a socket pair instead, and awaits its reply
without blocking the loop.

A batch stays with the writer (``pricing.ledger.writer``) until the process
has answered for it. If the process dies or stops answering mid-batch, it is
killed, started again, and the same batch is sent again (the store ignores
request ids it already holds); a batch the process keeps dying on is
reported as unavailable, so the writer spills it and carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pickle
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pricing.ledger.record import Record
from proxy.errors import SpendgateError
from proxy.server.ledger_worker import HEADER, WorkerOptions, frame

log = logging.getLogger("spendgate")

REPLY_TIMEOUT_S = 120.0
MAX_ATTEMPTS = 3
EXIT_TIMEOUT_S = 10.0
# The child imports the worker with this process's module path.
_BOOTSTRAP = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[2]); "
    "from proxy.server.ledger_worker import main; main(int(sys.argv[1]))"
)


class WorkerLost(Exception):
    """The writer process died, or did not answer in time."""


@dataclass
class _Child:
    popen: subprocess.Popen[bytes]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


def _spawn(fd: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _BOOTSTRAP, str(fd), json.dumps(sys.path)],
        pass_fds=(fd,),
        stdin=subprocess.DEVNULL,
    )


class ProcessBackend:
    """A :class:`~pricing.ledger.backend.WriteBackend` served by the writer process."""

    def __init__(
        self,
        options: WorkerOptions,
        *,
        reply_timeout_s: float = REPLY_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._options = options
        self._reply_timeout_s = reply_timeout_s
        self._max_attempts = max_attempts
        self._child: _Child | None = None
        self._lock = asyncio.Lock()
        self.starts = 0
        self.busy = False  # a request is out and not yet answered

    @property
    def pid(self) -> int | None:
        """The writer process's id while it runs."""
        return self._child.popen.pid if self._child is not None else None

    async def start(self) -> None:
        """Start the process now rather than with the first batch."""
        async with self._lock:
            await self._ensure()

    async def write(self, records: Sequence[Record], notes: Sequence[Any]) -> int:
        """See :meth:`pricing.ledger.backend.WriteBackend.write`."""
        return await self._call(("write", list(records), list(notes)))

    async def replay(self, lines: Sequence[bytes], notes: Sequence[Any]) -> int:
        """See :meth:`pricing.ledger.backend.WriteBackend.replay`."""
        return await self._call(("replay", list(lines), list(notes)))

    async def emit(self, notes: Sequence[Any]) -> None:
        """See :meth:`pricing.ledger.backend.WriteBackend.emit`."""
        await self._call(("emit", list(notes)))

    async def _call(self, message: tuple[Any, ...]) -> int:
        payload = frame(message)
        async with self._lock:
            for attempt in range(1, self._max_attempts + 1):
                try:
                    kind, value = await self._exchange(payload)
                except WorkerLost as exc:
                    log.warning("ledger writer process lost (%s, attempt %d)", exc, attempt)
                    await self._discard()
                    continue
                if kind == "ok":
                    return int(value)
                raise SpendgateError(str(value), code="ledger_unavailable")
        raise SpendgateError(
            f"the ledger writer process stopped {self._max_attempts} times on one batch",
            code="ledger_unavailable",
        )

    async def _exchange(self, payload: bytes) -> tuple[str, Any]:
        child = await self._ensure()
        self.busy = True
        try:
            async with asyncio.timeout(self._reply_timeout_s):
                child.writer.write(payload)
                await child.writer.drain()
                (size,) = HEADER.unpack(await child.reader.readexactly(HEADER.size))
                reply = pickle.loads(await child.reader.readexactly(size))
        except TimeoutError as exc:
            raise WorkerLost(f"no answer in {self._reply_timeout_s:g} s") from exc
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise WorkerLost(f"connection lost, exit code {child.popen.poll()}") from exc
        finally:
            self.busy = False
        kind, value = reply
        return str(kind), value

    async def _ensure(self) -> _Child:
        if self._child is not None and self._child.popen.poll() is None:
            return self._child
        if self._child is not None:
            await self._discard()
        ours, theirs = socket.socketpair()
        try:
            popen = await asyncio.to_thread(_spawn, theirs.fileno())
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        writer.write(frame(self._options))
        self._child = _Child(popen, reader, writer)
        self.starts += 1
        return self._child

    async def _discard(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        child.writer.close()
        if child.popen.poll() is None:
            child.popen.kill()
        await asyncio.to_thread(child.popen.wait)

    async def aclose(self) -> None:
        """Ask the process to exit once it is idle; kill it if it does not."""
        async with self._lock:
            child, self._child = self._child, None
            if child is None:
                return
            with contextlib.suppress(OSError):
                child.writer.write(frame(("close",)))
                await child.writer.drain()
            child.writer.close()
            try:
                await asyncio.to_thread(child.popen.wait, EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("ledger writer process did not exit; killing it")
                child.popen.kill()
                await asyncio.to_thread(child.popen.wait)
