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
bytes tells the two apart. The library never writes this layout (the tests forge such files
to check this reader).
"""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np

from .._util.container import Buffer
from ..errors import IndexFileError
from ..hashes import PDQ_HASH_BYTES

MAGIC = b"NCIIHIDX"
VERSION = 1
# magic, version, code bytes, count, next id, metadata length, codes offset, ids offset
HEADER = struct.Struct("<8sIIQQQQQ")
HEADER_SIZE = 64
_DIGEST_SIZE = 32  # SHA-256
_MAX_META = 1 << 20
_REBUILD = "rebuild the index from the bank"


def layout(count: int, meta_len: int) -> tuple[int, int, int]:
    codes_offset = -(-(HEADER_SIZE + meta_len) // 64) * 64
    ids_offset = codes_offset + count * PDQ_HASH_BYTES
    return codes_offset, ids_offset, ids_offset + 8 * count + _DIGEST_SIZE


def parse_index_v1(buf: Buffer, source: str) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """(codes, ids, next id, settings) of a version-1 file held in ``buf``, checksum verified.
    The arrays are views of ``buf``; ids and next id are checked by the caller."""
    size = len(buf)
    view = memoryview(buf).cast("B")
    try:
        if size < HEADER.size:
            raise IndexFileError(f"{source}: index file is truncated ({size} bytes); {_REBUILD}")
        _, _, code_bytes, count, next_id, meta_len, codes_offset, ids_offset = HEADER.unpack_from(view)
        expect = layout(count, meta_len) if meta_len <= _MAX_META and code_bytes == PDQ_HASH_BYTES else None
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
        raw_meta = bytes(view[HEADER_SIZE : HEADER_SIZE + meta_len])
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
