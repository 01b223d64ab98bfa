"""The package layout is the architecture, and these checks keep it so.

The parts of the code are layers; a module may import from its own layer
and the layers below it, never from one above:

    0  proxy.config, proxy.settings, proxy.errors   foundations
    1  routing, cache, pricing                      the libraries the proxy is built on
    2  proxy.providers                              each upstream API's wire format
    3  proxy.pipeline                               the request path
    4  proxy.ops                                    the operator's surface
    5  proxy.server                                 the app, its lifespan, the writer process
    6  proxy.demo                                   the demo and its simulated provider
    7  proxy.cli                                    the command line

So the request path imports nothing from the operator's surface, the
server, the demo or the command line, and nothing the server runs imports
the demo. On top of the layers, no two modules and no two packages import
each other, directly or round a longer loop. Every module must have a
layer: a new one is placed in this table before it can pass.

Imports are read from the source with ``ast``, all of them: at the top of a
module, inside functions, under ``TYPE_CHECKING``. A lazy import is still a
dependency. The last tests run the same checks over the real sources with
one forbidden import, or one cycle, added, and expect them to fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("proxy", "routing", "cache", "pricing")
# A module's part is the longest of these names that it is or lies under.
LAYERS: Mapping[str, int] = {
    "proxy": 0,  # the package's own __init__ only, which holds nothing
    "proxy.config": 0,
    "proxy.settings": 0,
    "proxy.errors": 0,
    "routing": 1,
    "cache": 1,
    "pricing": 1,
    "proxy.providers": 2,
    "proxy.pipeline": 3,
    "proxy.ops": 4,
    "proxy.server": 5,
    "proxy.demo": 6,
    "proxy.cli": 7,
}
ROOT_PACKAGE = "proxy"


@dataclass(frozen=True)
class Source:
    text: str
    is_package: bool  # an __init__.py: relative imports resolve from the package itself


def read_sources(root: Path) -> dict[str, Source]:
    """Every module of the four packages, by dotted name."""
    sources: dict[str, Source] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            sources[".".join(parts)] = Source(path.read_text(encoding="utf-8"), is_package)
    return sources


def package_of(name: str, source: Source) -> str:
    """The package a module belongs to: itself for an ``__init__``, else its parent."""
    return name if source.is_package else name.rpartition(".")[0]


def _nearest(name: str, known: Mapping[str, Source]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(name: str, source: Source, known: Mapping[str, Source]) -> set[str]:
    """The modules of the four packages that ``name`` imports, wherever it imports them."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.text, filename=name)):
        if isinstance(node, ast.Import):
            found.update(m for a in node.names if (m := _nearest(a.name, known)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package_of(name, source).split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                # ``from package import module`` names the module, not the package.
                target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                if (module := _nearest(target, known)) is not None:
                    found.add(module)
    found.discard(name)
    return found


def import_graph(sources: Mapping[str, Source]) -> dict[str, set[str]]:
    return {name: imported_modules(name, src, sources) for name, src in sources.items()}


def part_of(module: str) -> str | None:
    """The entry of ``LAYERS`` that ``module`` belongs to, or None."""
    candidates = [
        p for p in LAYERS if module == p or (p != ROOT_PACKAGE and module.startswith(p + "."))
    ]
    return max(candidates, key=len) if candidates else None


def layer_violations(graph: Mapping[str, set[str]]) -> list[str]:
    """Each import of a higher layer, and each module with no layer."""
    problems = []
    for module, targets in sorted(graph.items()):
        part = part_of(module)
        if part is None:
            problems.append(f"{module} has no layer: add it (or its package) to LAYERS")
            continue
        for target in sorted(targets):
            target_part = part_of(target)
            if target_part is not None and LAYERS[target_part] > LAYERS[part]:
                problems.append(
                    f"{module} ({part}) imports {target} ({target_part}), a higher layer"
                )
    return problems


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def package_graph(
    sources: Mapping[str, Source], graph: Mapping[str, set[str]]
) -> dict[str, set[str]]:
    """Which package imports which (a module's imports count for its package)."""
    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        own = package_of(module, sources[module])
        edges = out.setdefault(own, set())
        edges.update(package_of(t, sources[t]) for t in targets)
        edges.discard(own)
    return out


def problems_in(sources: Mapping[str, Source]) -> list[str]:
    """Every broken rule of the module docstring, one line each."""
    graph = import_graph(sources)
    found = layer_violations(graph)
    found += [f"modules import in a cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    packages = package_graph(sources, graph)
    found += [f"packages import in a cycle: {' <-> '.join(c)}" for c in cycles(packages)]
    return found


@pytest.fixture(scope="module")
def sources() -> dict[str, Source]:
    return read_sources(ROOT)


def test_every_module_imports_only_its_own_layer_and_those_below(
    sources: dict[str, Source],
) -> None:
    assert layer_violations(import_graph(sources)) == []


def test_no_modules_and_no_packages_import_in_a_cycle(sources: dict[str, Source]) -> None:
    graph = import_graph(sources)
    assert cycles(graph) == []
    assert cycles(package_graph(sources, graph)) == []


def test_the_tree_is_read_whole(sources: dict[str, Source]) -> None:
    # The checks see what they are meant to: the layers' packages and the
    # imports that tie the request path to them.
    assert {"proxy.pipeline.chat", "proxy.server.app", "proxy.cli", "routing.budgets"} <= set(
        sources
    )
    graph = import_graph(sources)
    assert "proxy.pipeline.policy" in graph["proxy.pipeline.chat"]
    assert "proxy.providers.openai" in graph["proxy.pipeline.chat"]
    assert "proxy.server.ledger_worker" in graph["proxy.server.ledger_process"]


def _with(sources: dict[str, Source], module: str, extra: str) -> dict[str, Source]:
    changed = dict(sources)
    changed[module] = Source(sources[module].text + extra, sources[module].is_package)
    return changed


@pytest.mark.parametrize(
    "forbidden", ["proxy.demo.run", "proxy.ops.access_log", "proxy.cli.common", "proxy.server.app"]
)
def test_the_checks_catch_the_request_path_importing_a_higher_layer(
    sources: dict[str, Source], forbidden: str
) -> None:
    assert problems_in(sources) == []
    # Hidden in a function, where it would only run late: still a dependency.
    lazy = f"\n\ndef _late() -> None:\n    import {forbidden}  # noqa\n"
    problems = problems_in(_with(sources, "proxy.pipeline.chat", lazy))
    assert f"proxy.pipeline.chat (proxy.pipeline) imports {forbidden}" in "\n".join(problems)


def test_the_checks_catch_the_server_importing_the_demo(sources: dict[str, Source]) -> None:
    problems = problems_in(
        _with(sources, "proxy.server.runtime", "\nfrom proxy.demo.simulator import runner\n")
    )
    assert any(
        p.startswith("proxy.server.runtime (proxy.server) imports proxy.demo.simulator.runner")
        for p in problems
    ), problems


def test_the_checks_catch_a_cycle_of_modules_within_one_layer(sources: dict[str, Source]) -> None:
    # chat imports policy; policy importing chat back closes a loop.
    problems = problems_in(
        _with(sources, "proxy.pipeline.policy", "\nimport proxy.pipeline.chat\n")
    )
    assert any(
        p.startswith("modules import in a cycle")
        and "proxy.pipeline.chat" in p
        and "proxy.pipeline.policy" in p
        for p in problems
    ), problems


def test_the_checks_catch_a_cycle_of_packages_within_one_layer(
    sources: dict[str, Source],
) -> None:
    # cache imports routing; routing importing cache makes the two packages a loop,
    # though no module imports one that imports it.
    problems = problems_in(_with(sources, "routing.tiers", "\nfrom cache import keys\n"))
    assert any(
        p.startswith("packages import in a cycle") and "cache" in p and "routing" in p
        for p in problems
    ), problems


def test_the_checks_catch_a_module_with_no_layer(sources: dict[str, Source]) -> None:
    changed = dict(sources, **{"proxy.utils": Source("import proxy.errors\n", False)})
    assert "proxy.utils has no layer: add it (or its package) to LAYERS" in problems_in(changed)
