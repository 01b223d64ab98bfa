"""What the server calls back on the parts it assembled.

* ``Closer``: run once at shutdown, in reverse order of start-up;
* ``Probe``: answers ``/readyz`` with ``{"ok": ..., "critical": ...}`` and details;
* ``Refresher``: run every few seconds to read state again (stored keys).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Closer = Callable[[], Awaitable[None]]
Probe = Callable[[], Awaitable[dict[str, Any]]]
Refresher = Callable[[], Awaitable[None]]
