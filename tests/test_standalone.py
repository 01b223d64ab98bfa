"""The repository stands alone: what tests, fits and benchmarks read ships inside it.

Every data file is compressed and listed, with its sha256, in a ``SOURCES.md``
beside it; no file refers to a data folder outside the repository.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIRS = ["routing/data", "bench/data", "tests/fixtures/tiktoken"]
# Spelled in pieces so that this file does not match its own search.
OUTSIDE_PATHS = re.compile("|".join(re.escape(p) for p in ["../" + "shared", "/work/" + "shared"]))


def tracked_files() -> list[Path]:
    """The files git tracks, or every file when this is not a git checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache"}
        return [p for p in REPO.rglob("*") if p.is_file() and not skip & set(p.parts)]
    return [REPO / name for name in out.decode().split("\0") if name]


def test_no_file_reads_a_data_folder_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        if path.suffix in {".gz", ".png", ".safetensors"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [
            f"{path.relative_to(REPO)}: {m.group(0)}" for m in OUTSIDE_PATHS.finditer(text)
        ]
    assert offenders == []


@pytest.mark.parametrize("folder", DATA_DIRS)
def test_every_data_file_is_compressed_and_matches_its_sources_entry(folder: str) -> None:
    directory = REPO / folder
    sources = (directory / "SOURCES.md").read_text(encoding="utf-8")
    data_files = sorted(p for p in directory.iterdir() if p.name.endswith(".gz"))
    assert data_files, f"{folder} holds no data"
    for path in data_files:
        packed = path.read_bytes()
        plain = gzip.decompress(packed)
        assert hashlib.sha256(packed).hexdigest() in sources, f"{path.name}: .gz sha256 not listed"
        assert hashlib.sha256(plain).hexdigest() in sources, (
            f"{path.name}: content sha256 not listed"
        )
    stray = [p.name for p in directory.iterdir() if p.is_file() and p.suffix not in {".gz", ".md"}]
    assert stray == [], "uncompressed data files"
