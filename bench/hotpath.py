"""Sampling the proxy under load with py-spy, and summarising the samples.

Two recordings, each while ``wrk`` drives the main proxy at concurrency 32:

* ``cpu``: fast misses; what the proxy's processes (the server and its ledger
  writer, ``--subprocesses``) spend their CPU on;
* ``gil``: misses behind the slow upstream, with ``--gil --idle``: which
  thread holds the GIL while requests wait on the upstream.

py-spy is an optional tool (``pip install py-spy``); without it the profile
is skipped with a note. The raw samples (folded stacks) are kept next to the
results so a flame graph can be drawn from them later.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.load import Kind
from bench.processes import CLIENT_CPU, cpu_prefix
from bench.wrk import script

SAMPLE_RATE_HZ = 250
PROFILE_CONCURRENCY = 32


def find_py_spy() -> str | None:
    """py-spy next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def _frame(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (to/file.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})"


def _split_stack(stack: str) -> tuple[str, list[str]]:
    """(process and thread label, frames) of one folded stack from ``--subprocesses --threads``."""
    role = "server process"
    while stack.startswith("process "):  # process PID:"command line" (which may hold ';'),
        end = stack.find('";')  # a child's nested under its parent's
        command, stack = stack[: end + 1], stack[end + 2 :]
        if "proxy.server.ledger_worker" in command:
            role = "ledger writer process"
        elif "multiprocessing" in command:
            role = "worker process"
    head, _, rest = stack.partition(";")
    thread = (
        "main thread" if head.endswith("MainThread") or head.count("(") == 0 else "other thread"
    )
    if head.startswith("thread ") and "MainThread" not in head:
        name = head.partition("): ")[2]
        thread = f"thread {name}" if name else "other thread"
    return f"{role}: {thread}", [f for f in rest.split(";") if f]


def summarise_folded(text: str, *, top: int = 25) -> dict[str, Any]:
    """Shares (% of samples) by process and thread, and of the busiest functions in each."""
    own: dict[str, Counter[str]] = {}
    inclusive: dict[str, Counter[str]] = {}
    threads: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        label, frames = _split_stack(stack)
        threads[label] += count
        named = [_frame(f) for f in frames] or ["(idle)"]
        own.setdefault(label, Counter())[named[-1]] += count
        for frame in set(named):
            inclusive.setdefault(label, Counter())[frame] += count
    share = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "threads_pct": [[name, share(n)] for name, n in threads.most_common()],
        "self_pct": {k: [[f, share(n)] for f, n in c.most_common(top)] for k, c in own.items()},
        "inclusive_pct": {
            k: [[f, share(n)] for f, n in c.most_common(top * 2)] for k, c in inclusive.items()
        },
    }


def profile_under_load(
    *, pid: int, url: str, kind: Kind, seconds: float, out: Path, flags: list[str]
) -> dict[str, Any]:
    """Record ``pid`` (and its child processes) with py-spy while wrk drives ``url``."""
    py_spy = find_py_spy()
    if py_spy is None:
        return {"skipped": "py-spy not installed"}
    out.parent.mkdir(parents=True, exist_ok=True)
    lua = out.with_suffix(".lua")
    lua.write_text(script(kind, path="/v1/chat/completions", key=None), encoding="utf-8")
    base = url.split("/v1/")[0] + "/"
    load = [
        *cpu_prefix(CLIENT_CPU), "wrk", "-t1", f"-c{PROFILE_CONCURRENCY}",
        f"-d{int(seconds) + 3}s", "-s", str(lua), base,
    ]  # fmt: skip
    loader = subprocess.Popen(load, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        record = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds))]
        record += ["--rate", str(SAMPLE_RATE_HZ), "--format", "raw", "--threads"]
        record += ["--subprocesses", *flags, "--output", str(out)]
        done = subprocess.run(
            record, capture_output=True, timeout=seconds + 60, check=False, stdin=subprocess.DEVNULL
        )
    finally:
        loader.wait(timeout=seconds + 120)
        lua.unlink(missing_ok=True)
    if done.returncode != 0 or not out.is_file():
        return {"skipped": f"py-spy failed: {done.stderr.decode(errors='replace')[-500:]}"}
    return {"raw": str(out), "flags": flags, **summarise_folded(out.read_text(encoding="utf-8"))}
