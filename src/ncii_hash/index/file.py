"""The HashIndex file and bytes form (derived data: rebuild it from the bank when refused).

A HashIndex is saved as a checksummed container (:mod:`ncii_hash._util.container`) of kind
``NCIIHIDX``, version 2: arrays ``codes`` (uint8 (n, 32)) and ``ids`` (int64 (n,), strictly
increasing, non-negative), metadata ``{"backend", "compact_fraction", "options", "next_id"}``.
The bytes form (:meth:`HashIndex.to_bytes`, pickling) is the same container in memory.
Version-1 files (ncii_hash 0.x, ``file_v1.py``) are still read. Any damage raises
:class:`ncii_hash.errors.IndexFileError`, a ValueError naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .._util.container import (
    Buffer, ContainerKind, container_bytes, header_of, load_buffer, parse_container, release, write_container,
)
from ..errors import IndexFileError
from ..hashes import PDQ_HASH_BYTES
from . import file_v1

KIND = ContainerKind(file_v1.MAGIC, 2, "a ncii_hash index file", "rebuild the index from the bank")
_MAX_NEXT_ID = 1 << 63  # ids are int64, so the next fresh id is at most max int64 + 1


@dataclass(frozen=True, eq=False)
class IndexImage:
    """What a file holds: live codes and ids (views of ``buffer``), the next auto id and the
    settings (backend, compact_fraction, options) still to be validated by the caller."""

    codes: np.ndarray
    ids: np.ndarray
    next_id: int
    settings: dict
    buffer: Any


def _arrays(codes: np.ndarray, ids: np.ndarray) -> dict:
    return {"codes": np.ascontiguousarray(codes), "ids": np.ascontiguousarray(ids, dtype="<i8")}


def write_index(target: os.PathLike | str, codes: np.ndarray, ids: np.ndarray, next_id: int,
                settings: Mapping[str, Any]) -> None:
    write_container(target, KIND, _arrays(codes, ids), {**settings, "next_id": int(next_id)})


def index_bytes(codes: np.ndarray, ids: np.ndarray, next_id: int, settings: Mapping[str, Any]) -> bytes:
    return container_bytes(KIND, _arrays(codes, ids), {**settings, "next_id": int(next_id)})


def read_index(path: os.PathLike | str, *, mmap: bool) -> IndexImage:
    buf = load_buffer(path, mmap=mmap)
    try:
        return parse_index(buf, str(path))
    except BaseException:
        release(buf)
        raise


def parse_index(buf: Buffer, source: str) -> IndexImage:
    if header_of(buf) == (file_v1.MAGIC, file_v1.VERSION):
        codes, ids, next_id, settings = file_v1.parse_index_v1(buf, source)
    else:
        box = parse_container(buf, KIND, source)
        settings = dict(box.meta)
        next_id = settings.pop("next_id", None)
        if set(box.arrays) != {"codes", "ids"}:
            raise IndexFileError(f"{source}: index file holds arrays {sorted(box.arrays)}, not codes and ids; "
                                 f"{KIND.rebuild}")
        codes, ids = box.arrays["codes"], box.arrays["ids"]
        n = ids.shape[0] if ids.ndim == 1 else -1
        if (codes.dtype != np.uint8 or codes.shape != (n, PDQ_HASH_BYTES) or ids.dtype != np.dtype("<i8")
                or isinstance(next_id, bool) or not isinstance(next_id, int) or next_id < 0):
            raise IndexFileError(f"{source}: index arrays or next id have the wrong type or shape; {KIND.rebuild}")
    if next_id > _MAX_NEXT_ID:  # a larger next id would overflow int64 in add()
        raise IndexFileError(f"{source}: next id {next_id} does not fit in int64; the file is corrupt")
    n = ids.shape[0]
    if n and (ids[0] < 0 or not bool(np.all(ids[1:] > ids[:-1])) or next_id <= ids[-1]):
        raise IndexFileError(f"{source}: index ids are not strictly increasing; the file is corrupt")
    return IndexImage(codes, ids.astype(np.int64, copy=False), int(next_id), settings, buf)
