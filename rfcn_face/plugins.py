"""Registries that user code can extend without editing the library, and the import of the modules that do so.

mmdetection's ``custom_imports`` habit: a config's top-level ``imports: [module, ...]`` (and the ``--import
MODULE`` option of the verbs that read registries) names modules to import *before* the config is validated or
a registry is read; such a module registers its classes with a decorator::

    from rfcn_face.assigners import register, MaxIoUAssigner

    @register("my_rule")
    class MyRule(MaxIoUAssigner):
        ...

:class:`Registry` is the one registry type (anchor-assignment strategies: :mod:`rfcn_face.assigners`; benchmark
sets: :mod:`rfcn_face.benchmarks`): a name -> class mapping whose unknown-name error lists what is known.
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable, Iterable, Optional

__all__ = ["Registry", "import_modules"]


class Registry(dict):
    """``name -> class``; ``register(name)`` is a class decorator (the class gets ``.name``), ``get(name)`` the
    class or a ``ValueError`` naming ``what`` and the known names."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def register(self, name: str, *, replace: bool = False) -> Callable[[type], type]:
        if not isinstance(name, str) or not name or name.strip() != name:
            raise ValueError(f"{self.what} name must be a non-empty string without surrounding blanks, got {name!r}")

        def deco(cls: type) -> type:
            old = self.get_or_none(name)
            if old is not None and old is not cls and not replace:
                raise ValueError(f"{self.what} {name!r} is already registered by {old.__module__}.{old.__qualname__}"
                                 f" (register({name!r}, replace=True) to replace it)")
            cls.name = name
            self[name] = cls
            return cls
        return deco

    def get_or_none(self, name: str) -> Optional[type]:
        return dict.get(self, name)

    def lookup(self, name: str, source: str = "") -> type:
        cls = self.get_or_none(name)
        if cls is None:
            where = f"{source}: " if source else ""
            raise ValueError(f"{where}unknown {self.what} {name!r}; known: {', '.join(sorted(self)) or 'none'} "
                             "(a module that registers more is loaded with the config's 'imports' key)")
        return cls


def import_modules(names: Iterable[str], source: str = "imports") -> list:
    """Import each module of ``names`` (dotted names; the current directory is on the path, as for ``python -m``).
    A module that cannot be imported is a ``ValueError`` naming it, ``source`` and the reason."""
    done = []
    for name in names or ():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{source}: module names must be non-empty strings, got {name!r}")
        if "" not in sys.path and "." not in sys.path:
            sys.path.insert(0, "")
        try:
            done.append(importlib.import_module(name.strip()))
        except ImportError as e:
            raise ValueError(f"{source}: cannot import module {name!r}: {e}") from None
        except Exception as e:   # the module itself failed: name it, not a traceback of ours
            first = (str(e).strip().splitlines() or [""])[0]
            raise ValueError(f"{source}: importing module {name!r} failed: {type(e).__name__}: {first}") from None
    return done
