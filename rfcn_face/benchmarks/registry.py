"""The benchmark registry: ``name -> class`` (:class:`rfcn_face.plugins.Registry`), filled by the modules of this
package and by user modules (``--import MODULE``, a config's ``imports:``)."""
from __future__ import annotations

from ..plugins import Registry

__all__ = ["BENCHMARKS", "register", "get_benchmark", "val_benchmark", "reproduced_benchmarks"]

BENCHMARKS = Registry("benchmark")


def register(name: str, *, replace: bool = False):
    """Class decorator: ``@register("my-set")`` over a :class:`~rfcn_face.benchmarks.base.Benchmark` subclass
    makes ``test --dataset my-set`` (and, with ``in_reproduce``, ``reproduce --benchmarks``) use it."""
    return BENCHMARKS.register(name, replace=replace)


def get_benchmark(name: str, source: str = "--dataset"):
    """An instance of the benchmark registered as ``name``; an unknown name is a ValueError naming ``source``
    and the known names."""
    cls = BENCHMARKS.get_or_none(name)
    if cls is None:
        raise ValueError(f"{source}: unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)} (--import MODULE "
                         "loads a module that registers more, docs/extending.md)")
    return cls()


def val_benchmark(data_dataset: str):
    """The benchmark that is the val split of the training data set ``data.dataset`` (``wider`` -> wider-val,
    ``synthfaces`` -> synthfaces-val): the first registered class whose ``val_of`` names it."""
    for cls in BENCHMARKS.values():
        if cls.val_of == data_dataset:
            return cls()
    raise ValueError(f"no registered benchmark is the val split of data.dataset {data_dataset!r}")


def reproduced_benchmarks() -> list:
    """Instances of the benchmarks ``reproduce --benchmarks`` runs (``in_reproduce``), in registration order."""
    return [cls() for cls in BENCHMARKS.values() if cls.in_reproduce]
