"""The papers as recipes over scoring and selection: one module per method, each registered by name
(`@registry.method` on its `steps`); `instructsift methods` lists them."""

from __future__ import annotations

from ..registry import Method, entries, get


def get_method(name: str) -> Method:
    """The method registered as `name` (or an alias), or a `UsageError` listing the known ones."""
    return get("method", name).target


def all_methods() -> list[Method]:
    return [e.target for e in entries("method")]


__all__ = ["Method", "all_methods", "get_method"]
