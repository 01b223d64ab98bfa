"""Keeping the server's resident memory close to what it holds.

glibc gives each thread that contends for the heap an arena of its own, up
to eight per core, and memory freed in one arena serves only that arena. The
server's threads (the token-counter warm-up, ``asyncio.to_thread`` workers
loading the embedding model and the router) each leave pages behind in their
own arena, which the event loop's thread then cannot reuse. Two arenas, one
for the loop and one shared by the rest, measured 7 MiB less after load
with the semantic cache and routing on (``python -m bench.semcache_memory``).
"""

from __future__ import annotations

import ctypes

# mallopt parameter number, from glibc's <malloc.h>.
_M_ARENA_MAX = -8
ARENAS = 2


def cap_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Limit glibc's malloc to ``arenas`` arenas; False where there is no glibc mallopt.

    Call it before the process starts its threads: it caps only the arenas
    created afterwards.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
