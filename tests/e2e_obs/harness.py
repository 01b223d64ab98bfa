"""What the observability checks add to the shared processes: a temp folder of their own.

Children run with ``TMPDIR`` pointed into their work folder, so the proxy's
multiprocess metrics folder (made with ``mkdtemp``) can be found and inspected.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import child_env

SIM_KEY = "sim-key"


def env_with_tmpdir(workdir: Path) -> dict[str, str]:
    """The children's environment, with temporary files in ``workdir/tmp``."""
    tmpdir = workdir / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    return child_env(extra={"TMPDIR": str(tmpdir)})
