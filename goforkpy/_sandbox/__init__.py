"""Sandboxed children (API.md section 18), under way: ``kernel`` is what Linux enforces."""
