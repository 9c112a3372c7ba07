"""The ``secretswitch`` command line: local stack, rotation, status, demo."""

from __future__ import annotations

__all__: list[str] = []
