"""The secretswitch demo: an application switching users under load while its secret rotates."""

from __future__ import annotations

__all__: list[str] = []
