"""The text embedding: read from the installed wheel, offline, the same vectors as WordLlama's."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from routing.embedding import DIM, EmbedderUnavailableError, EmbeddingFiles, TextEmbedder
from routing.features import window


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder.load()


def test_loads_and_embeds_with_every_connection_refused() -> None:
    # A fresh interpreter whose sockets cannot connect anywhere: loading must not try.
    script = textwrap.dedent(
        """
        import socket, sys
        def refuse(*args, **kwargs):
            raise OSError("network disabled in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from routing.embedding import TextEmbedder
        v = TextEmbedder.load().embed("How do I reset my password?")
        assert "wordllama" not in sys.modules, "the wordllama package was imported"
        assert "requests" not in sys.modules and "huggingface_hub" not in sys.modules
        print(len(v), round(float((v * v).sum()), 4))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(DIM), "1.0"]


def test_vectors_equal_wordllamas_own() -> None:
    # In a child: importing wordllama reconfigures the root logger.
    script = textwrap.dedent(
        """
        import importlib.util
        import numpy as np
        from wordllama import WordLlama
        from routing.embedding import TextEmbedder
        folder = importlib.util.find_spec("wordllama").submodule_search_locations[0]
        theirs = WordLlama.load(cache_dir=folder, disable_download=True)
        ours = TextEmbedder.load()
        texts = ["Hi!", "Translate 'good morning' into French.", "def f(x):\\n    return x * 2"]
        for text in texts:
            cosine = float(np.dot(ours.embed(text), theirs.embed(text, norm=True)[0]))
            assert cosine > 0.99999, (text, cosine)
        print("same")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "same"


def test_similar_meanings_are_closer_than_different_ones(embedder: TextEmbedder) -> None:
    a = embedder.embed("How do I reset my password?")
    b = embedder.embed("How can I change my account password?")
    c = embedder.embed("Prove that there are infinitely many primes.")
    assert a.shape == (DIM,) and a.dtype == np.float32
    assert float(a @ b) > float(a @ c) + 0.2


def test_text_without_tokens_embeds_to_zeros(embedder: TextEmbedder) -> None:
    assert not embedder.embed("").any()


def test_embed_many_matches_embed(embedder: TextEmbedder) -> None:
    texts = ["one", "two words", ""]
    many = embedder.embed_many(texts)
    for row, text in zip(many, texts, strict=True):
        assert np.array_equal(row, embedder.embed(text))


@pytest.mark.parametrize(
    ("text", "head", "tail", "expected"),
    [
        ("short", 3, 3, "short"),
        ("abcdefgh", 2, 3, "ab\nfgh"),
        ("abcdefgh", 2, 0, "ab"),
        ("x" * 100_000, 500, 300, "x" * 500 + "\n" + "x" * 300),
    ],
)
def test_window_keeps_head_and_tail(text: str, head: int, tail: int, expected: str) -> None:
    assert window(text, head=head, tail=tail) == expected


def test_missing_files_are_a_clear_error(tmp_path: Path) -> None:
    files = EmbeddingFiles(weights=tmp_path / "w.safetensors", tokenizer=tmp_path / "t.json")
    with pytest.raises(EmbedderUnavailableError, match="cannot read the embedding model"):
        TextEmbedder.load(files)
