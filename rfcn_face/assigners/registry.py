"""The registry of anchor-assignment strategies: ``register(name)`` (a class decorator) and ``ASSIGNERS``
(name -> :class:`~rfcn_face.assigners.base.Assigner` subclass)."""
from __future__ import annotations

from ..plugins import Registry

__all__ = ["ASSIGNERS", "register"]

ASSIGNERS = Registry("anchor assignment strategy")
register = ASSIGNERS.register
