"""Running the proxy under uvicorn: one process, or ``--workers N``."""

from __future__ import annotations

import ipaddress
import shutil
import sys
import tempfile
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from proxy.ops.access_log import configure_access_log
from proxy.server.app import create_app
from proxy.server.listener import bind_per_worker, reuse_port_spreads
from proxy.server.memory import cap_malloc_arenas
from proxy.settings import Settings, export_for_workers, load_settings

GRACEFUL_SHUTDOWN_S = 30
# The ledger writer's thread does Python work (hashing, rollups) in batches; a
# shorter GIL switch interval keeps the event loop from waiting behind it.
GIL_SWITCH_INTERVAL_S = 0.001


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def worker_app() -> FastAPI:
    """App factory for each worker process of ``--workers N``."""
    cap_malloc_arenas()
    settings = load_settings()
    configure_access_log(settings.config.server.access_log)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    return create_app(settings, freeze_startup_objects=True)


def _run_workers(workers: int, options: dict[str, Any], *, host: str, port: int) -> int:
    """uvicorn's supervisor over ``workers`` processes, each listening on a socket of its
    own where the kernel can spread connections over them (``proxy.server.listener``)."""
    config = uvicorn.Config(
        "proxy.server.server:worker_app", factory=True, workers=workers, **options
    )
    if reuse_port_spreads():
        try:
            sock = bind_per_worker(host, port)
        except OSError as exc:
            print(f"cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
            return STARTUP_FAILURE
    else:
        sock = config.bind_socket()
    try:
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:  # Ctrl-C before the supervisor took over the signals
        pass
    finally:
        sock.close()
    return 0


def describe(settings: Settings) -> list[str]:
    config = settings.config
    lines = [f"config: {settings.source}"]
    for name, provider in config.providers.items():
        count = sum(1 for m in config.models if m.provider == name)
        lines.append(f"provider {name} ({provider.type}, {provider.base_url}): {count} models")
    for missing in settings.missing_providers:
        lines.append(f"provider missing: {missing}")
    if not config.providers:
        lines.append("no provider configured: every model call will fail until one is")
    return lines


def listening(host: str, port: int) -> list[str]:
    """Where the proxy listens, and the line that points an OpenAI client at it.

    A wildcard bind (``0.0.0.0``, ``::``) is reached on this machine through
    the loopback address.
    """
    local = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return [
        f"listening on {_http_url(host, port)} (Ctrl-C to stop)",
        f"  export OPENAI_BASE_URL={_http_url(local, port)}/v1",
    ]


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(settings: Settings, *, host: str, port: int, workers: int, insecure: bool) -> int:
    from proxy.server.defaults import has_proxy_keys

    if not is_loopback(host) and not has_proxy_keys(settings) and not insecure:
        print(
            f"refusing to listen on {host} with no proxy keys configured: anyone could spend "
            "through it. Add auth.keys (or `spendgate keys create`), or pass --insecure.",
            file=sys.stderr,
        )
        return 1
    for line in (*describe(settings), *listening(host, port)):
        print(line, file=sys.stderr)
    configure_access_log(settings.config.server.access_log)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    options = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "loop": "auto",
        "http": "auto",
        "lifespan": "on",
        # uvicorn takes X-Forwarded-For only from these peers (its default: 127.0.0.1).
        "forwarded_allow_ips": list(settings.config.server.forwarded_allow_ips),
    }
    if workers > 1:
        metrics_dir = tempfile.mkdtemp(prefix="spendgate-metrics-")
        export_for_workers(settings, metrics_dir=metrics_dir)
        try:
            return _run_workers(workers, options, host=host, port=port)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    cap_malloc_arenas()
    app = create_app(settings, freeze_startup_objects=True)
    uvicorn.run(app, **options)  # type: ignore[arg-type]
    return 0
