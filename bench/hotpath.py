"""Sampling the proxy's hot path under load with py-spy, and summarising the samples.

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
from bench.processes import CLIENT_CPU, child_env, cpu_prefix

SAMPLE_RATE_HZ = 250


def find_py_spy() -> str | None:
    """py-spy next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def _frame(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (to/file.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})"


def summarise_folded(text: str, *, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares (% of samples) of the busiest functions."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    share = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "self_pct": [[name, share(n)] for name, n in own.most_common(top)],
        "inclusive_pct": [[name, share(n)] for name, n in inclusive.most_common(top * 3)],
    }


def profile_under_load(
    *, pid: int, url: str, kinds: list[Kind], seconds: float, out: Path, key: str | None = None
) -> dict[str, Any]:
    """Record ``pid`` with py-spy while a concurrency-32 load runs against ``url``."""
    py_spy = find_py_spy()
    if py_spy is None:
        return {"skipped": "py-spy not installed"}
    import json
    from dataclasses import asdict

    load = [
        *cpu_prefix(CLIENT_CPU), sys.executable, "-m", "bench.load", "--url", url,
        "--spec", json.dumps([asdict(k) for k in kinds]), "--concurrency", "32",
        "--duration", str(seconds + 2), *(["--key", key] if key else []),
    ]  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    loader = subprocess.Popen(
        load, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env()
    )
    try:
        record = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds))]
        record += ["--rate", str(SAMPLE_RATE_HZ), "--format", "raw", "--output", str(out)]
        done = subprocess.run(
            record, capture_output=True, timeout=seconds + 60, check=False, stdin=subprocess.DEVNULL
        )
    finally:
        loader.wait(timeout=seconds + 120)
    if done.returncode != 0 or not out.is_file():
        return {"skipped": f"py-spy failed: {done.stderr.decode(errors='replace')[-500:]}"}
    return {"raw": str(out), **summarise_folded(out.read_text(encoding="utf-8"))}
