"""Printing the overhead results and checking them against the performance targets."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LATEST = RESULTS_DIR / "latest.json"
_DELAY = ("scenarios", "upstream_delay_c32")
_C32 = ("scenarios", "throughput_c32", "results", "spendgate")


@dataclass(frozen=True, slots=True)
class Target:
    """A documented performance target: a measured value against a limit."""

    name: str
    path: tuple[str, ...]  # where the value is in the results document
    limit: float
    unit: str
    at_least: bool = False  # a floor, not a ceiling

    def value(self, doc: dict[str, Any]) -> float | None:
        node: Any = doc
        for part in self.path:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return float(node) if isinstance(node, int | float) else None

    def met(self, value: float) -> bool:
        return value >= self.limit if self.at_least else value <= self.limit


TARGETS = (
    Target("p50 overhead, 50 ms upstream, c32", (*_DELAY, "overhead", "p50_ms"), 3.0, "ms"),
    Target(
        "event-loop lag p99, 50 ms upstream, c32",
        (*_DELAY, "results", "spendgate", "loop_lag", "p99_ms"), 5.0, "ms",
    ),
    Target("server CPU per request, c32", (*_C32, "cpu_us_per_request"), 850, "us"),
    Target("requests/s, c32", (*_C32, "rps"), 1100, "req/s", at_least=True),
    Target("p50 overhead, c1", ("scenarios", "latency_c1", "overhead", "p50_ms"), 1.0, "ms"),
    Target(
        "stream TTFB p50 overhead", ("scenarios", "stream_ttfb_c1", "overhead", "p50_ms"), 1.5, "ms"
    ),
    Target(
        "exact hit p50, memory",
        ("scenarios", "cache_hit_memory_c1", "results", "spendgate", "latency_ms", "p50"), 1.0, "ms",
    ),
    Target("two workers / one worker, req/s", ("scaling", "ratio"), 1.7, "x", at_least=True),
    Target("proxy RSS after load (all its processes)", ("rss", "main_after", "total"), 150, "MiB"),
    Target("ledger rows lost, all scenarios", ("ledger_rows_lost",), 0, "rows"),
)  # fmt: skip


def rows_lost(doc: dict[str, Any]) -> int:
    """Requests the proxies counted minus ledger rows, summed over the proxies."""
    last: dict[str, dict[str, int]] = {}
    for entry in doc.get("scenarios", {}).values():
        if "ledger" in entry:
            last[entry["proxy"]] = entry["ledger"]
    return sum(abs(v["requests"] - v["rows"]) for v in last.values())


def check_targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it is met (None: not measured)."""
    doc = {**doc, "ledger_rows_lost": rows_lost(doc)}
    checks = []
    for target in TARGETS:
        value = target.value(doc)
        checks.append(
            {
                "target": target.name,
                "limit": f"{'>=' if target.at_least else '<='} {target.limit:g} {target.unit}",
                "value": value,
                "met": None if value is None else target.met(value),
            }
        )
    return checks


def errors_of(summary: dict[str, Any]) -> int:
    """Answers that were not 2xx, plus requests lost to the transport."""
    statuses: dict[str, int] = summary.get("statuses", {})
    bad = sum(n for status, n in statuses.items() if not status.startswith("2"))
    return bad + int(summary.get("transport_errors", 0))


def _ms(value: Any) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "-"
    return f"{value:.3f}"


def _num(value: Any) -> str:
    return f"{value:.0f}" if isinstance(value, int | float) else "-"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *rows]
    )


def _signed(over: dict[str, Any], q: str) -> str:
    diff, ratio = over.get(f"{q}_ms"), over.get(f"{q}_ratio")
    if diff is None:
        return "-"
    return f"+{diff:.3f}" + (f" (x{ratio:.1f})" if ratio else "")


def results_table(doc: dict[str, Any]) -> str:
    """One line per scenario and target, then the overhead lines."""
    header = ["scenario / target", "n", "err", "req/s", "p50 ms", "p90 ms", "p99 ms", "ttfb p50"]
    header += ["cpu us/req", "lag p50/p99/max ms"]
    rows: list[list[str]] = []
    for name, entry in doc.get("scenarios", {}).items():
        for label, summary in entry["results"].items():
            lat, ttfb, lag = (summary.get(k, {}) for k in ("latency_ms", "ttfb_ms", "loop_lag"))
            lags = "/".join(_ms(lag.get(k)) for k in ("p50_ms", "p99_ms", "max_ms")) if lag else ""
            rows.append([
                f"{name} / {label}", str(summary["requests"]), str(errors_of(summary)),
                f"{summary['rps']:.0f}", _ms(lat.get("p50")), _ms(lat.get("p90")),
                _ms(lat.get("p99")), _ms(ttfb.get("p50")), _num(summary.get("cpu_us_per_request")),
                lags,
            ])  # fmt: skip
        for key, label in (("floor_overhead", "floor"), ("overhead", "spendgate")):
            over = entry.get(key)
            if over is None:
                continue
            rows.append([
                f"  {label} - direct ({over['metric'].removesuffix('_ms')})", "", "",
                f"x{over['rps_ratio']:.2f}" if over.get("rps_ratio") else "",
                _signed(over, "p50"), _signed(over, "p90"), _signed(over, "p99"), "", "", "",
            ])  # fmt: skip
    return _table(header, rows)


def cpu_table(doc: dict[str, Any]) -> str:
    """Spendgate's CPU per request in each scenario, by process and thread."""
    labels: list[str] = []
    for entry in doc.get("scenarios", {}).values():
        for label in entry["results"]["spendgate"].get("cpu_us_by_thread", {}):
            if label not in labels:
                labels.append(label)
    rows = []
    for name, entry in doc.get("scenarios", {}).items():
        split = entry["results"]["spendgate"].get("cpu_us_by_thread", {})
        total = entry["results"]["spendgate"].get("cpu_us_per_request")
        rows.append([name, *(_num(split.get(label)) for label in labels), _num(total)])
    return _table(["Spendgate CPU us/request", *labels, "total"], rows)


def _ledger_lines(doc: dict[str, Any]) -> list[str]:
    lines = []
    for name, entry in doc.get("scenarios", {}).items():
        ledger = entry.get("ledger")
        if ledger is not None:
            lines.append(
                f"  after {name}: proxy '{entry['proxy']}' counted {ledger['requests']} requests, "
                f"its ledger holds {ledger['rows']} rows"
            )
    return lines


def _scaling_lines(scaling: dict[str, Any]) -> list[str]:
    lines = []
    for key in ("workers_1", "workers_2"):
        s = scaling.get(key)
        if s:
            lines.append(
                f"  {key.replace('_', ' ')}: {s['rps']:.0f} req/s, p50 {s['latency_ms']['p50']:.2f} ms, "
                f"CPU {_num(s.get('cpu_us_per_request'))} us/request, errors {errors_of(s)}"
            )
            busy = {k: v for k, v in s.get("cpu_s_by_process", {}).items() if v >= 0.05}
            if busy:
                lines.append(
                    "    CPU s by process: " + ", ".join(f"{k} {v:.2f}" for k, v in busy.items())
                )
    rounds = scaling.get("rounds") or []
    if len(rounds) > 1:
        lines.append(
            "  every round, one worker -> two (req/s): "
            + "; ".join(
                f"{r['workers_1']['rps']:.0f} -> {r['workers_2']['rps']:.0f}"
                + ("" if r["ratio"] is None else f" x{r['ratio']:.2f}")
                for r in rounds
            )
        )
    if scaling.get("ratio") is not None:
        median = " (the median round, shown above)" if len(rounds) > 1 else ""
        lines.append(f"  two workers / one worker: x{scaling['ratio']:.2f}{median}")
    return lines


def targets_table(checks: list[dict[str, Any]]) -> str:
    """The targets with their measured values."""
    lines = []
    for check in checks:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[check["met"]]
        value = "-" if check["value"] is None else f"{check['value']:.3f}"
        lines.append(f"  {check['target']:<42} {value:>10}  (target {check['limit']}): {verdict}")
    return "\n".join(lines)


def render(doc: dict[str, Any]) -> str:
    """The whole human-readable report."""
    parts = [results_table(doc), "", cpu_table(doc), "", "ledger rows:", *_ledger_lines(doc)]
    if doc.get("scaling"):
        parts += ["", f"--workers scaling (concurrency {doc['scaling']['concurrency']}):"]
        parts += _scaling_lines(doc["scaling"])
    parts += ["", "RSS (MiB): " + _rss_line(doc.get("rss", {}))]
    if doc.get("skipped"):
        parts.append("skipped: " + "; ".join(f"{k}: {v}" for k, v in doc["skipped"].items()))
    if "targets" in doc:
        parts += ["", "targets:", targets_table(doc["targets"])]
    return "\n".join(parts)


def _rss_line(rss: dict[str, Any]) -> str:
    out = []
    for moment, tree in rss.items():
        if isinstance(tree, dict):
            parts = ", ".join(f"{k} {v:.1f}" for k, v in tree.items() if k != "total")
            out.append(f"{moment}: {tree.get('total', 0):.1f} ({parts})")
    return "; ".join(out)


def write_json(doc: dict[str, Any], path: Path = LATEST) -> Path:
    """Write the results document (creating the results folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
