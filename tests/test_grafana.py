"""The Grafana provisioning in deploy/grafana: it parses and queries only real metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.pipeline.metrics import Metrics

GRAFANA = Path(__file__).resolve().parents[1] / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "spendgate.json"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"
PROVIDER = GRAFANA / "provisioning" / "dashboards" / "spendgate.yaml"
METRIC = re.compile(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b")
# What Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$__interval": "15s",
    "$fee_rate": "0.10",
    "$tenant": ".*",
}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def exposed_names() -> set[str]:
    """Every series name ``/metrics`` can expose, from the app's own registry."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def expressions() -> list[str]:
    return [t["expr"] for p in panels() for t in p["targets"]]


def substituted(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def referenced_metrics(expr: str) -> set[str]:
    """Names in ``expr`` that look like Spendgate metrics (label names excluded)."""
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_groupings = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_labels)
    return {m for m in METRIC.findall(without_groupings) if m.startswith("spendgate")}


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    known = exposed_names()
    used = set().union(*(referenced_metrics(e) for e in expressions()))
    assert used, "the dashboard queries no Spendgate metric"
    assert used <= known, f"not exported by proxy/pipeline/metrics.py: {sorted(used - known)}"


def test_the_promql_parses_and_selects_only_exported_series() -> None:
    promql_parser = pytest.importorskip("promql_parser")
    known = exposed_names()
    for expr in expressions():
        selected: list[str] = []

        def visit(node: Any, selected: list[str] = selected) -> None:
            if isinstance(node, promql_parser.VectorSelector):
                selected.append(node.name)

        promql_parser.walk(promql_parser.parse(substituted(expr)), pre_visit=visit)
        assert selected, expr
        assert set(selected) <= known, expr


def test_the_dashboard_covers_spend_latency_cache_routing_and_reliability() -> None:
    used = set().union(*(referenced_metrics(e) for e in expressions()))
    for name in (
        "spendgate_requests_total",
        "spendgate_upstream_seconds_bucket",
        "spendgate_proxy_seconds_bucket",
        "spendgate_cost_micro_usd_total",
        "spendgate_baseline_micro_usd_total",
        "spendgate_savings_micro_usd_total",
        "spendgate_cache_hits_total",
        "spendgate_route_decisions_total",
        "spendgate_fallbacks_total",
        "spendgate_circuit_open",
        "spendgate_ledger_backlog",
        "spendgate_ledger_spill_pending",
    ):
        assert name in used, name
    quantiles = [e for e in expressions() if "histogram_quantile" in e]
    assert any("spendgate_upstream_seconds_bucket" in e for e in quantiles)
    assert any("spendgate_proxy_seconds_bucket" in e for e in quantiles)


def test_money_is_shown_in_dollars() -> None:
    money = [e for e in expressions() if "_micro_usd_total" in e]
    assert money
    for expr in money:
        # A ratio of two amounts needs no unit; every other amount is divided by 1e6.
        assert "/ 1e6" in expr or expr.count("_micro_usd_total") >= 2, expr
    units = {
        p["fieldConfig"]["defaults"]["unit"]
        for p in panels()
        if any("_micro_usd_total" in t["expr"] for t in p["targets"])
    }
    assert "currencyUSD" in units


def test_panels_are_well_formed_and_use_the_provisioned_datasource() -> None:
    source = yaml.safe_load(DATASOURCE.read_text(encoding="utf-8"))["datasources"][0]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    assert board["uid"] and board["title"]
    for panel in panels():
        assert panel["title"]
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]
    variables = {v["name"] for v in board["templating"]["list"]}
    for expr in expressions():
        for name in re.findall(r"\$(\w+)", expr):
            assert name in variables or f"${name}" in GRAFANA_VARIABLES, name


def test_the_dashboard_provider_loads_the_dashboards_folder() -> None:
    provider = yaml.safe_load(PROVIDER.read_text(encoding="utf-8"))["providers"][0]
    assert provider["type"] == "file"
    # docker-compose mounts deploy/grafana/dashboards at this path.
    assert provider["options"]["path"] == "/etc/grafana/dashboards"


def test_an_unknown_metric_would_be_caught() -> None:
    assert referenced_metrics('sum(rate(spendgate_nope_total{tier="x"}[5m]))') == {
        "spendgate_nope_total"
    }
    assert "spendgate_nope_total" not in exposed_names()
    assert "spendgate_requests_total" in exposed_names()
