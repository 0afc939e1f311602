"""Benchmarks that ``fedchain bench`` runs (one module each)."""
