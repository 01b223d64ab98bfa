from __future__ import annotations

from pathlib import Path

import pytest

from pricing.catalog import Catalog, load_catalog
from pricing.tokens import TokenCounter

REPO = Path(__file__).resolve().parents[2]
TIKTOKEN_DIR = REPO / "tests" / "fixtures" / "tiktoken"
LITELLM_FIXTURE = REPO / "tests" / "fixtures" / "litellm" / "model_prices_and_context_window.json"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tiktoken_dir() -> Path:
    """The verified rank files, gzipped, that ship with the tests."""
    return TIKTOKEN_DIR


@pytest.fixture(scope="session")
def warm_counter(tiktoken_dir: Path) -> TokenCounter:
    counter = TokenCounter(tiktoken_dir)
    status = counter.warm()
    assert status == {"o200k_base": "loaded", "cl100k_base": "loaded"}
    return counter


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def litellm_fixture() -> Path:
    """A small sample in the format of LiteLLM's model_prices_and_context_window.json."""
    return LITELLM_FIXTURE
