"""Keys created and revoked with the CLI while the proxy runs take effect without a restart.

The proxy starts with no key at all (open, on loopback). A key created with
``spendgate keys create`` closes it within seconds; revoking that key with
``spendgate keys revoke`` makes it useless, and the proxy stays closed: a
revoked last key never lets keyless clients back in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from tests.e2e_security.harness import Proxy, main_config
from tests.support.servers import Simulator, start_proxy

pytestmark = [pytest.mark.e2e]

RELOAD_WAIT_S = 30.0  # the proxy reads the keys every 10 s


def spendgate(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status_of(proxy: Proxy, key: str) -> int:
    client = openai.OpenAI(base_url=proxy.openai_base_url, api_key=key, max_retries=0)
    try:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    except openai.APIStatusError as exc:
        return exc.status_code
    finally:
        client.close()
    return 200


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + RELOAD_WAIT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.25)


def test_keys_created_and_revoked_while_running_take_effect(
    sim: Simulator, uid: str, tmp_path: Path
) -> None:
    config = main_config(sim, tmp_path, uid)
    del config["auth"]  # no configured key: only stored ones
    config_path = tmp_path / "keys.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    proxy = start_proxy(config, tmp_path, kind=Proxy)
    try:
        assert status_of(proxy, "anything") == 200  # open: no key exists yet

        created = spendgate(config_path, "keys", "create", "--tenant", f"team-{uid}")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()
        key_id = created.stderr.split()[2]
        assert key.startswith("sg-") and key_id.startswith("key_")

        eventually(lambda: status_of(proxy, "not-a-key") == 401, "a created key closes the proxy")
        assert status_of(proxy, key) == 200

        listed = spendgate(config_path, "keys", "list")
        assert listed.returncode == 0, listed.stderr
        assert f"{key_id}\tteam-{uid}\t" in listed.stdout and "\tactive" in listed.stdout
        assert key not in listed.stdout  # never the key itself

        revoked = spendgate(config_path, "keys", "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        eventually(lambda: status_of(proxy, key) == 401, "a revoked key stops working")
        # Revoking the last key does not open the proxy again.
        assert status_of(proxy, "not-a-key") == 401
        assert "\trevoked" in spendgate(config_path, "keys", "list").stdout

        again = spendgate(config_path, "keys", "revoke", key_id)
        assert again.returncode == 1 and "no active key" in again.stderr
    finally:
        proxy.stop()
