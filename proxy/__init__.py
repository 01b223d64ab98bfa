"""Spendgate: OpenAI-compatible proxy that caches, routes and bills LLM calls."""
