"""A simulated upstream provider speaking OpenAI's and Anthropic's APIs.

Fast and deterministic, with fault injection and request statistics; used by
the end-to-end tests, ``spendgate demo`` and the benchmarks. Run it with
``python -m proxy.demo.simulator --port P`` or, in-process, with ``run_simulator``.
"""

from proxy.demo.simulator.app import SimulatorApp, build_app
from proxy.demo.simulator.faults import FaultMode
from proxy.demo.simulator.runner import SimulatorHandle, run_simulator
from proxy.demo.simulator.state import SimConfig

__all__ = [
    "FaultMode",
    "SimConfig",
    "SimulatorApp",
    "SimulatorHandle",
    "build_app",
    "run_simulator",
]
