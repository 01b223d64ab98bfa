"""The real processes behind the browser test: the simulated provider and the proxy.

Both come from ``tests.support``; the browser test takes each as (process, base URL).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.processes import REPO, Process
from tests.support.servers import Proxy
from tests.support.servers import start_proxy as start_proxy_process
from tests.support.servers import start_simulator as start_simulator_process

__all__ = ["REPO", "start_proxy", "start_simulator"]


def start_simulator(workdir: Path) -> tuple[Process, str]:
    """``python -m proxy.demo.simulator --port 0``; its base URL from the listening line."""
    sim = start_simulator_process(workdir)
    return sim.process, sim.base_url


def start_proxy(config: Mapping[str, Any], workdir: Path) -> tuple[Process, str]:
    """``python -m proxy.cli serve`` on a free port, once it is ready."""
    proxy = start_proxy_process(config, workdir, kind=Proxy)
    return proxy.process, proxy.base_url
