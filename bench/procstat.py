"""CPU time and memory of a server and every process under it, per thread, from /proc.

A Spendgate proxy is a process (or, with ``--workers N``, a supervisor with
N worker processes) plus one ledger writer process per worker. CPU time is
read for every thread of every one of them, so a report can say where the
time went: the event loop's thread, other threads, the writer process.
CPU time is what the server itself used, so unlike wall-clock latency it
barely changes when other work shares the machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ThreadTime:
    """CPU seconds one thread has used so far, with the role of its process."""

    pid: int
    tid: int
    role: str
    seconds: float

    @property
    def label(self) -> str:
        """The role, and whether this is the process's main thread."""
        return f"{self.role}: {'main thread' if self.tid == self.pid else 'other threads'}"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, parents first."""
    out, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        out.append(current)
        for task in _tasks(current):
            text = _read(f"/proc/{current}/task/{task}/children") or ""
            queue.extend(int(x) for x in text.split())
    return out


def _tasks(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def role_of(pid: int, root: int) -> str:
    """What a process of the tree is, from its command line."""
    command = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ")
    if "proxy.server.ledger_worker" in command:
        return "ledger writer process"
    if pid == root:
        return "server process"
    return "worker process"


def thread_times(root: int) -> dict[tuple[int, int], ThreadTime]:
    """CPU time of every thread of ``root``'s tree, by (pid, tid)."""
    out: dict[tuple[int, int], ThreadTime] = {}
    for pid in descendants(root):
        role = role_of(pid, root)
        for tid in _tasks(pid):
            stat = _read(f"/proc/{pid}/task/{tid}/stat")
            if stat is None:
                continue
            fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
            seconds = (int(fields[11]) + int(fields[12])) / _TICKS
            out[(pid, tid)] = ThreadTime(pid, tid, role, seconds)
    return out


def cpu_split(
    before: dict[tuple[int, int], ThreadTime], after: dict[tuple[int, int], ThreadTime]
) -> dict[str, float]:
    """CPU seconds used between two snapshots, by thread label, plus ``total``."""
    split: dict[str, float] = {}
    for key, now in after.items():
        then = before.get(key)
        used = now.seconds - (then.seconds if then else 0.0)
        # Every label, even at zero: /proc counts in 10 ms ticks, so a short run can read 0.
        split[now.label] = split.get(now.label, 0.0) + max(0.0, used)
    split["total"] = sum(split.values())
    return split


def cpu_by_process(
    before: dict[tuple[int, int], ThreadTime], after: dict[tuple[int, int], ThreadTime]
) -> dict[str, float]:
    """CPU seconds used between two snapshots by each process (``role pid``)."""
    split: dict[str, float] = {}
    for key, now in after.items():
        then = before.get(key)
        used = max(0.0, now.seconds - (then.seconds if then else 0.0))
        name = f"{now.role} {now.pid}"
        split[name] = split.get(name, 0.0) + used
    return split


def rss_mib(pid: int) -> float | None:
    """A process's resident set size (``VmRSS``) in MiB, None when unreadable."""
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def tree_rss_mib(root: int) -> dict[str, float]:
    """RSS in MiB of each process of ``root``'s tree (by role and pid) and their ``total``."""
    out: dict[str, float] = {}
    for pid in descendants(root):
        value = rss_mib(pid)
        if value is not None:
            out[f"{role_of(pid, root)} {pid}"] = value
    out["total"] = sum(out.values())
    return out
