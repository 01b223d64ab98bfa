"""Semantic cache: serve an earlier answer to a near-identical question in the same context."""

from cache.semantic.embedders import (
    EmbedCall,
    Embedder,
    ProviderEmbedder,
    SentenceTransformersEmbedder,
    build_embedder,
)
from cache.semantic.guard import GuardPolicy, GuardVerdict, check, guard_allows
from cache.semantic.hash_embedder import HashEmbedder, HashEmbedderConfig
from cache.semantic.index import Candidate, IndexEntry, MemoryIndex, SemanticIndex
from cache.semantic.redis_index import RedisIndex, VectorSearchSupport, vector_search_support
from cache.semantic.service import (
    EmbeddedTurn,
    SemanticCache,
    SemanticMatch,
    SemanticProbe,
    default_guard_policy,
    default_threshold,
)
from cache.semantic.wordllama import WordLlamaEmbedder

__all__ = [
    "Candidate",
    "EmbedCall",
    "EmbeddedTurn",
    "Embedder",
    "GuardPolicy",
    "GuardVerdict",
    "HashEmbedder",
    "HashEmbedderConfig",
    "IndexEntry",
    "MemoryIndex",
    "ProviderEmbedder",
    "RedisIndex",
    "SemanticCache",
    "SemanticIndex",
    "SemanticMatch",
    "SemanticProbe",
    "SentenceTransformersEmbedder",
    "VectorSearchSupport",
    "WordLlamaEmbedder",
    "build_embedder",
    "check",
    "default_guard_policy",
    "default_threshold",
    "guard_allows",
    "vector_search_support",
]
