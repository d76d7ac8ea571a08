"""The HashIndex file of ncii_hash 0.x (version 1), read-only: index files and bank snapshots
written before the container format still load. New files are containers (see ``file.py``).

Layout, little-endian::

    0    64-byte header: magic b"NCIIHIDX", format version (u32, 1), code bytes (u32, 32),
         count (u64), next auto id (u64), metadata length (u64), codes offset (u64),
         ids offset (u64), zero padding
    64   metadata: JSON (backend name and options)
    ...  zero padding to a multiple of 64
         codes: count x 32 bytes (64-byte aligned)
         ids: count x int64, strictly increasing
         SHA-256 of every byte before it (32 bytes)

The magic and the version sit where they sit in a container, so one look at the first 12
bytes tells the two apart. ``write_index_file`` remains only so that tests can forge damaged
version-1 files; the library never writes this layout.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

from .._util.container import Buffer
from .._util.files import atomic_private_file
from ..errors import IndexFileError
from ..hashes import PDQ_HASH_BYTES

MAGIC = b"NCIIHIDX"
VERSION = 1
# magic, version, code bytes, count, next id, metadata length, codes offset, ids offset
_HEADER = struct.Struct("<8sIIQQQQQ")
_HEADER_SIZE = 64
_DIGEST_SIZE = 32  # SHA-256
_MAX_META = 1 << 20
_REBUILD = "rebuild the index from the bank"


def _layout(count: int, meta_len: int) -> tuple[int, int, int]:
    codes_offset = -(-(_HEADER_SIZE + meta_len) // 64) * 64
    ids_offset = codes_offset + count * PDQ_HASH_BYTES
    return codes_offset, ids_offset, ids_offset + 8 * count + _DIGEST_SIZE


def write_index_file(target: Path, codes: np.ndarray, ids: np.ndarray, next_id: int, meta: bytes) -> None:
    """Write a version-1 file (tests forge old and damaged files with it)."""
    count = int(ids.shape[0])
    codes_offset, ids_offset, _ = _layout(count, len(meta))
    header = _HEADER.pack(MAGIC, VERSION, PDQ_HASH_BYTES, count, next_id, len(meta), codes_offset, ids_offset)
    header += bytes(_HEADER_SIZE - len(header))
    pad = bytes(codes_offset - _HEADER_SIZE - len(meta))
    digest = hashlib.sha256()
    with atomic_private_file(target) as f:
        for chunk in (header, meta, pad, memoryview(np.ascontiguousarray(codes).reshape(-1)),
                      memoryview(np.ascontiguousarray(ids, dtype="<i8").view(np.uint8))):
            f.write(chunk)
            digest.update(chunk)
        f.write(digest.digest())


def parse_index_v1(buf: Buffer, source: str) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """(codes, ids, next id, settings) of a version-1 file held in ``buf``, checksum verified.
    The arrays are views of ``buf``; ids and next id are checked by the caller."""
    size = len(buf)
    view = memoryview(buf).cast("B")
    try:
        if size < _HEADER.size:
            raise IndexFileError(f"{source}: index file is truncated ({size} bytes); {_REBUILD}")
        _, _, code_bytes, count, next_id, meta_len, codes_offset, ids_offset = _HEADER.unpack_from(view)
        expect = _layout(count, meta_len) if meta_len <= _MAX_META and code_bytes == PDQ_HASH_BYTES else None
        if expect is None or (codes_offset, ids_offset) != expect[:2]:
            raise IndexFileError(f"{source}: corrupt index header; {_REBUILD}")
        if size != expect[2]:
            raise IndexFileError(
                f"{source}: index file is truncated or corrupt (expected {expect[2]} bytes for "
                f"{count} hashes, found {size}); {_REBUILD}"
            )
        digest = hashlib.sha256()
        step = 1 << 24
        for off in range(0, size - _DIGEST_SIZE, step):
            digest.update(view[off : min(off + step, size - _DIGEST_SIZE)])
        if digest.digest() != bytes(view[size - _DIGEST_SIZE :]):
            raise IndexFileError(f"{source}: index checksum mismatch, the file is corrupt; {_REBUILD}")
        raw_meta = bytes(view[_HEADER_SIZE : _HEADER_SIZE + meta_len])
    finally:
        view.release()
    try:
        meta = json.loads(raw_meta.decode())
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise IndexFileError(f"{source}: index metadata is not valid JSON; {_REBUILD}") from None
    if not isinstance(meta, dict):
        raise IndexFileError(f"{source}: index metadata is not a JSON object; {_REBUILD}")
    codes = np.frombuffer(buf, dtype=np.uint8, count=count * PDQ_HASH_BYTES, offset=codes_offset)
    ids = np.frombuffer(buf, dtype="<i8", count=count, offset=ids_offset)
    return codes.reshape(count, PDQ_HASH_BYTES), ids, int(next_id), meta
