"""What ``spendgate serve`` prints about where it listens."""

from __future__ import annotations

import pytest

from proxy.server.server import listening


@pytest.mark.parametrize(
    ("host", "address", "base_url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080", "http://127.0.0.1:8080/v1"),
        ("localhost", "http://localhost:8080", "http://localhost:8080/v1"),
        ("0.0.0.0", "http://0.0.0.0:8080", "http://127.0.0.1:8080/v1"),
        ("::", "http://[::]:8080", "http://[::1]:8080/v1"),
        ("::1", "http://[::1]:8080", "http://[::1]:8080/v1"),
        ("10.1.2.3", "http://10.1.2.3:8080", "http://10.1.2.3:8080/v1"),
    ],
)
def test_serve_names_its_address_and_the_base_url_to_export(
    host: str, address: str, base_url: str
) -> None:
    assert listening(host, 8080) == [
        f"listening on {address} (Ctrl-C to stop)",
        f"  export OPENAI_BASE_URL={base_url}",
    ]
