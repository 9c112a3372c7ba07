"""The secretswitch demo and the embedded local stack it runs on."""

from __future__ import annotations

__all__: list[str] = []
