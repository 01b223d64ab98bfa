"""LiteLLM's price map, read from its wheel (a file, or the installed package).

The ``litellm`` wheel on PyPI ships ``model_prices_and_context_window_backup.json``.
It is read straight from the wheel's zip, or from the installed
distribution's files through ``importlib.metadata``: LiteLLM itself is never
imported (it is large, and nothing of it runs here). The wheel's version
names the prices' provenance (``as_of: "litellm <version>"``).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from proxy.errors import ConfigError

PRICE_FILE = "litellm/model_prices_and_context_window_backup.json"
DISTRIBUTION = "litellm"


@dataclass(frozen=True, slots=True)
class WheelPrices:
    """The price map's bytes and the version of the wheel they came from."""

    version: str
    content: bytes
    origin: str  # the wheel file, or where the installed package lives

    @property
    def as_of(self) -> str:
        return f"litellm {self.version}"

    @property
    def source(self) -> str:
        return f"https://pypi.org/project/litellm/{self.version}/ ({PRICE_FILE})"


def _version(metadata_text: str, where: str) -> str:
    version = Parser().parsestr(metadata_text, headersonly=True).get("Version")
    if not version:
        raise ConfigError([f"{where}: the wheel's METADATA names no Version"])
    return version.strip()


def read_wheel(path: Path) -> WheelPrices:
    """The price map inside the wheel file at ``path``."""
    try:
        with zipfile.ZipFile(path) as wheel:
            names = wheel.namelist()
            if PRICE_FILE not in names:
                raise ConfigError([f"{path}: no {PRICE_FILE} in this wheel (is it litellm's?)"])
            meta = [n for n in names if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
            if len(meta) != 1:
                raise ConfigError([f"{path}: expected one .dist-info/METADATA in the wheel"])
            version = _version(wheel.read(meta[0]).decode("utf-8"), str(path))
            content = wheel.read(PRICE_FILE)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError([f"{path}: not a readable wheel ({exc})"]) from exc
    return WheelPrices(version, content, str(path))


def read_installed(name: str = DISTRIBUTION) -> WheelPrices:
    """The price map of the installed ``litellm`` distribution, without importing it."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError as exc:
        raise ConfigError(
            [f"{name} is not installed: give the path of a downloaded wheel "
             f"(pip download {name} --no-deps -d DIR)"]
        ) from exc  # fmt: skip
    files = [f for f in dist.files or () if f.as_posix() == PRICE_FILE]
    if not files:
        raise ConfigError([f"the installed {name} {dist.version} has no {PRICE_FILE}"])
    located = Path(str(files[0].locate()))
    try:
        content = located.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{located}: cannot read ({exc.strerror})"]) from exc
    return WheelPrices(dist.version, content, str(located))
