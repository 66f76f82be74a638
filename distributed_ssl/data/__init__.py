"""Shard formats, converters and the Ray Data pipeline. Knows nothing about models."""
