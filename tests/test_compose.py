"""The deployment files: docker-compose.yml, the Dockerfile and deploy/.

No container engine runs here, so the compose file is checked with
``docker-compose config`` (which validates it fully without one) and by its
parsed structure, and the Dockerfile's tiktoken step is run on its own
against the verified local copies of the encodings.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.settings import parse_config_file

REPO = Path(__file__).resolve().parents[1]
TIKTOKEN_FIXTURES = REPO / "tests" / "fixtures" / "tiktoken"
OFFICIAL_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
STORES = {"redis": "/data", "postgres": "/var/lib/postgresql/data"}


def compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is not installed (apt-get install docker-compose)")
        pytest.skip("docker-compose is not installed")
    return binary


def run_config(binary: str, compose_file: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        [binary, "-f", str(compose_file), "config", "-q"],
        cwd=compose_file.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def test_compose_file_passes_docker_compose_config(tmp_path: Path) -> None:
    binary = compose_binary()
    result = run_config(binary, REPO / "docker-compose.yml")
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr  # e.g. an unset variable without a default

    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n  app:\n    image: x\n    depends_on:\n"
        "      ghost: {condition: service_healthy}\n"
    )
    assert run_config(binary, broken).returncode != 0


def test_services_and_their_wiring(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"spendgate", "redis", "postgres", "prometheus", "grafana"}
    assert services["grafana"]["depends_on"] == {"prometheus": {"condition": "service_started"}}
    app = services["spendgate"]
    assert app["build"] == "."
    assert "8080:8080" in app["ports"]
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "SPENDGATE_ADMIN_KEY"):
        assert app["environment"][name] == "${" + name + ":-}"
    assert "./deploy/spendgate.yaml:/etc/spendgate/spendgate.yaml:ro" in app["volumes"]
    assert app["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    assert services["redis"]["image"] == "redis:7"
    assert services["postgres"]["image"] == "postgres:16"
    assert services["postgres"]["environment"] == {
        "POSTGRES_USER": "spendgate",
        "POSTGRES_PASSWORD": "spendgate",
        "POSTGRES_DB": "spendgate",
    }
    assert services["prometheus"]["image"].startswith("prom/prometheus")


def test_stores_have_healthchecks_and_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    pg_check = " ".join(services["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in pg_check
    declared = set(compose["volumes"])
    for service, mount_point in {**STORES, "prometheus": "/prometheus"}.items():
        named = [
            v.split(":")[0] for v in services[service]["volumes"] if v.split(":")[1] == mount_point
        ]
        assert len(named) == 1 and named[0] in declared, service


def test_prometheus_scrapes_the_proxy(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    config = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    spendgate = jobs["spendgate"]
    assert spendgate.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for group in spendgate["static_configs"] for t in group["targets"]]
    assert targets == ["spendgate:8080"]


def test_deploy_config_is_valid_for_the_proxy() -> None:
    env = {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a", "SPENDGATE_ADMIN_KEY": "adm"}
    config = parse_config_file(
        REPO / "deploy" / "spendgate.yaml", env=env, known_provider_types=("openai", "anthropic")
    )
    assert config.providers["openai"].api_key == "sk-o"
    assert config.cache.backend == "redis"
    assert config.cache.redis_url == "redis://redis:6379/0"
    assert config.ledger.url == "postgresql://spendgate:spendgate@postgres:5432/spendgate"
    assert config.auth is not None and config.auth.admin_key == "adm"
    assert {m.tier for m in config.models} >= {"small", "large"}


def test_dockerfile_pins_the_official_encoding_hashes(dockerfile: str) -> None:
    pinned = dict(
        (name, digest)
        for digest, name in re.findall(r"\b([0-9a-f]{64})\s+(\w+)\.tiktoken\b", dockerfile)
    )
    assert pinned == OFFICIAL_SHA256
    assert "sha256sum -c" in dockerfile
    assert "ENV SPENDGATE_TIKTOKEN_DIR=/opt/spendgate/tiktoken" in dockerfile


def test_dockerfile_runtime_settings(dockerfile: str) -> None:
    lines = [line.strip() for line in dockerfile.splitlines()]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms == ["FROM python:3.11-slim"]
    assert 'RUN pip install ".[postgres]"' in lines
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    assert "EXPOSE 8080" in lines
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert lines[-1] == (
        'CMD ["spendgate", "serve", "--host", "0.0.0.0", "--port", "8080", '
        '"--config", "/etc/spendgate/spendgate.yaml"]'
    )


def tiktoken_step(dockerfile: str) -> str:
    """The RUN instruction that fetches the encodings, as one shell command."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    for line in joined.splitlines():
        if line.startswith("RUN ") and "sha256sum -c" in line:
            return line.removeprefix("RUN ")
    raise AssertionError("no RUN step checks sha256 sums")


def test_dockerfile_tiktoken_step_fetches_and_verifies(dockerfile: str, tmp_path: Path) -> None:
    # The step downloads from TIKTOKEN_URL: serve it the official files from disk.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in OFFICIAL_SHA256:
        plain = gzip.decompress((TIKTOKEN_FIXTURES / f"{name}.tiktoken.gz").read_bytes())
        (mirror / f"{name}.tiktoken").write_bytes(plain)
    target = tmp_path / "tiktoken"
    command = tiktoken_step(dockerfile).replace("/opt/spendgate/tiktoken", str(target))
    python_dir = tmp_path / "bin"
    python_dir.mkdir()
    (python_dir / "python").symlink_to(sys.executable)
    env = {
        "PATH": f"{python_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "TIKTOKEN_URL": mirror.as_uri(),
    }
    result = subprocess.run(
        ["bash", "-ec", command], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "o200k_base.tiktoken: OK" in result.stdout
    assert "cl100k_base.tiktoken: OK" in result.stdout
    for name, digest in OFFICIAL_SHA256.items():
        assert hashlib.sha256((target / f"{name}.tiktoken").read_bytes()).hexdigest() == digest
