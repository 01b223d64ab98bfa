"""The ``spendgate`` command line as a user runs it: real processes, real files."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import (
    child_env,
    free_port,
    healthy,
    python_module,
    spawn,
    wait_until,
)

pytestmark = pytest.mark.e2e

BAD_CONFIG = """\
providers:
  openai:
    type: opnai
    base_url: api.openai.com/v1
models:
  - name: gpt-4o
    provider: openai
    tier: huge
  - name: claude
    provider: anthropc
routing:
  mode: sideways
  baseline_model: no-such-model
"""

GOOD_CONFIG = """\
providers:
  local:
    type: openai
    base_url: http://127.0.0.1:9/v1
    api_key: ${E2E_LOCAL_KEY}
models:
  - name: gpt-4o
    provider: local
    tier: large
"""

FILES = {"bad": BAD_CONFIG, "good": GOOD_CONFIG, "broken": "providers: [unclosed\n"}


@dataclass(frozen=True)
class Checked:
    path: Path
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Checked]:
    """``spendgate check-config`` on each file of ``FILES``, run side by side."""
    workdir = tmp_path_factory.mktemp("check-config")
    running: dict[str, tuple[Path, subprocess.Popen[str]]] = {}
    for name, text in FILES.items():
        path = workdir / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        running[name] = (
            path,
            subprocess.Popen(
                [sys.executable, "-m", "proxy.cli", "check-config", str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                cwd=workdir,
                env=child_env(),
            ),
        )
    results: dict[str, Checked] = {}
    for name, (path, popen) in running.items():
        try:
            stdout, stderr = popen.communicate(timeout=60)
        finally:
            popen.kill()
            popen.wait()
        results[name] = Checked(path, popen.returncode, stdout, stderr)
    return results


def test_check_config_lists_every_problem_with_its_path(
    checked: dict[str, Checked],
) -> None:
    result = checked["bad"]

    assert result.returncode == 1
    problems = result.stderr
    assert "config: 6 problem(s)" in problems
    for where in (
        "providers.openai.type: unknown provider type 'opnai'",
        "providers.openai.base_url: must start with http:// or https://",
        "models[0].tier:",
        "models[1].provider: unknown provider 'anthropc'",
        "routing.mode:",
        "routing.baseline_model: unknown model 'no-such-model'",
    ):
        assert where in problems
    assert "OK" not in result.stdout


def test_check_config_accepts_a_good_file(checked: dict[str, Checked]) -> None:
    result = checked["good"]

    assert result.returncode == 0, result.stderr
    assert f"{result.path}: OK (1 models, 1 providers)" in result.stdout


def test_check_config_on_unparseable_yaml_exits_1(checked: dict[str, Checked]) -> None:
    result = checked["broken"]

    assert result.returncode == 1
    assert f"{result.path}: not valid YAML" in result.stderr


def test_serve_without_config_or_keys_names_the_missing_providers_and_where_it_listens(
    tmp_path: Path,
) -> None:
    port = free_port()
    process = spawn(
        "bare-serve",
        python_module("proxy.cli", "serve", "--port", str(port)),
        workdir=tmp_path / "logs",
        cwd=tmp_path,
        env=child_env(),  # no provider keys: the proxy must name them missing
    )
    try:
        wait_until(process, lambda: healthy(f"http://127.0.0.1:{port}"))
        stderr = process.stderr()
    finally:
        process.stop()

    assert "config: environment" in stderr
    assert "provider missing: openai (set OPENAI_API_KEY)" in stderr
    assert "provider missing: anthropic (set ANTHROPIC_API_KEY)" in stderr
    assert "no provider configured" in stderr
    assert f"listening on http://127.0.0.1:{port} (Ctrl-C to stop)\n" in stderr
    assert f"\n  export OPENAI_BASE_URL=http://127.0.0.1:{port}/v1\n" in stderr
    assert process.popen.returncode is not None
