"""The interface every HashIndex backend implements, and the registry of backends by name.

A backend is a :class:`Searcher`: an object the :class:`~ncii_hash.index.HashIndex` owns next to
its rows (:class:`~ncii_hash.index.table.CodeTable`). The index keeps the rows, ids, tombstones
and the lock; the searcher answers queries over them and may keep a mirror of the codes (row r
of the mirror is row r of the table), which the index keeps in step by calling ``rebuild`` or
``append`` (under its writer lock) after the rows change. Searches run concurrently (under the
reader lock): a searcher with mutable search state guards it itself.

A new backend is one class with a unique ``name``, passed to :func:`register_backend`
(``backends.py`` registers the built-in ones).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Protocol

import numpy as np

from .results import KnnResult, RangeResult
from .table import CodeTable


class Searcher(Protocol):
    name: ClassVar[str]  #: the ``backend=`` string
    exact: ClassVar[bool]  #: range search returns every live code within the radius

    def __init__(self, options: Mapping[str, Any]) -> None:
        """``options``: HashIndex's validated backend options (ivf_*, hnsw_*). Imports any
        optional dependency now, failing with an ImportError that names the extra."""

    def rebuild(self, codes: np.ndarray) -> None:
        """Every row changed: ``codes`` (n, 32) are the table's rows now."""

    def append(self, codes: np.ndarray, start: int) -> None:
        """Rows ``codes[start:]`` were appended; rows before ``start`` are unchanged."""

    def range_search(self, table: CodeTable, queries: np.ndarray, radius: int, variants: int,
                     threads: int) -> RangeResult:
        """Live rows within ``radius`` (inclusive) of ``queries`` (Q*variants, 32), consecutive
        ``variants`` rows being one query's dihedral set, in the order and with the variant
        de-duplication of :func:`ncii_hash.index.results.merge_hits`."""

    def knn(self, table: CodeTable, queries: np.ndarray, k: int, threads: int) -> KnnResult:
        """The ``k`` nearest live rows of each query, ascending by distance."""


_REGISTRY: dict[str, type] = {}


def register_backend(cls: type) -> type:
    """Make ``cls`` (a :class:`Searcher`) available as ``HashIndex(backend=cls.name)``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not isinstance(getattr(cls, "exact", None), bool):
        raise TypeError(f"{cls.__name__} needs a str 'name' and a bool 'exact' to be a backend")
    if _REGISTRY.get(name, cls) is not cls:
        raise ValueError(f"backend {name!r} is already registered by {_REGISTRY[name].__name__}")
    _REGISTRY[name] = cls
    return cls


def backend_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def searcher_class(name: object) -> type:
    """The registered backend class called ``name``; ValueError naming the choices."""
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"backend must be one of {', '.join(map(repr, _REGISTRY))}; got {name!r}")
    return cls
