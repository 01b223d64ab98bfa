"""What the kernel says about the sockets of child processes, read from ``/proc``.

A server counts as started only once *its own* process listens on its port (a
port picked free can be taken by someone else first), and the established
connections show how a burst spread over the workers of ``--workers N``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

_LISTEN = "0A"
_ESTABLISHED = "01"


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
