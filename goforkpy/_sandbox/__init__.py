"""Sandboxed children (API.md section 18), under way: ``kernel`` is what Linux enforces,
``plain`` the data a sandboxed child may send back, decoded without running its code."""
