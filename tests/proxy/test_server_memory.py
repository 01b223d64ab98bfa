"""The server's malloc arena cap takes effect on glibc."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_the_cap_takes_on_glibc() -> None:
    # In a child process: the cap is process-wide and stays for the life of the process.
    code = "from proxy.server.memory import cap_malloc_arenas; print(cap_malloc_arenas(2))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
