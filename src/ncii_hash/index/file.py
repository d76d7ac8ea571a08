"""The on-disk format of a HashIndex (derived data: rebuild it from the bank when refused).

Layout, little-endian::

    0    64-byte header: magic b"NCIIHIDX", format version (u32), code bytes (u32, 32),
         count (u64), next auto id (u64), metadata length (u64), codes offset (u64),
         ids offset (u64), zero padding
    64   metadata: JSON (backend name and options)
    ...  zero padding to a multiple of 64
         codes: count x 32 bytes (64-byte aligned, so a memory map serves SIMD loads well)
         ids: count x int64, strictly increasing
         SHA-256 of every byte before it (32 bytes)

Writers replace files atomically (temp file in the same directory, fsync, rename, fsync of the
directory) with mode 0600. Readers check the magic, the version, the exact file size and the
checksum before trusting a single byte, so a foreign, truncated or corrupted file (one flipped
byte anywhere) is refused with a ValueError instead of giving wrong matches.
"""

from __future__ import annotations

import hashlib
import json
import mmap as _mmap
import os
import struct
from pathlib import Path

import numpy as np

from .._util.files import atomic_private_file
from ..hashes import PDQ_HASH_BYTES

_MAGIC = b"NCIIHIDX"
_FORMAT_VERSION = 1
# magic, version, code bytes, count, next id, metadata length, codes offset, ids offset
_HEADER = struct.Struct("<8sIIQQQQQ")
_HEADER_SIZE = 64
_DIGEST_SIZE = 32  # SHA-256
_MAX_META = 1 << 20
_MAX_NEXT_ID = 1 << 63  # ids are int64, so the next fresh id is at most max int64 + 1


def _layout(count: int, meta_len: int) -> tuple[int, int, int]:
    codes_offset = -(-(_HEADER_SIZE + meta_len) // 64) * 64
    ids_offset = codes_offset + count * PDQ_HASH_BYTES
    return codes_offset, ids_offset, ids_offset + 8 * count + _DIGEST_SIZE


def _bytes_of(arr: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))


def write_index_file(target: Path, codes: np.ndarray, ids: np.ndarray, next_id: int, meta: bytes) -> None:
    count = int(ids.shape[0])
    codes_offset, ids_offset, _ = _layout(count, len(meta))
    header = _HEADER.pack(_MAGIC, _FORMAT_VERSION, PDQ_HASH_BYTES, count, next_id, len(meta), codes_offset, ids_offset)
    header += bytes(_HEADER_SIZE - len(header))
    pad = bytes(codes_offset - _HEADER_SIZE - len(meta))
    digest = hashlib.sha256()
    with atomic_private_file(target) as f:
        for chunk in (header, meta, pad, _bytes_of(codes), _bytes_of(ids)):
            f.write(chunk)
            digest.update(chunk)
        f.write(digest.digest())


def read_index_file(source: Path, keep_mapped: bool):
    with open(source, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(_HEADER_SIZE)
        if len(head) < _HEADER.size or head[:8] != _MAGIC:
            raise ValueError(f"{source} is not a ncii_hash index file (bad magic); rebuild the index from the bank")
        _, version, code_bytes, count, next_id, meta_len, codes_offset, ids_offset = _HEADER.unpack_from(head)
        if version != _FORMAT_VERSION:
            raise ValueError(
                f"{source}: index format version {version} is not supported (this ncii_hash reads "
                f"version {_FORMAT_VERSION}); rebuild the index from the bank"
            )
        expect = _layout(count, meta_len) if meta_len <= _MAX_META and code_bytes == PDQ_HASH_BYTES else None
        if expect is None or (codes_offset, ids_offset) != expect[:2]:
            raise ValueError(f"{source}: corrupt index header; rebuild the index from the bank")
        if size != expect[2]:
            raise ValueError(
                f"{source}: index file is truncated or corrupt (expected {expect[2]} bytes for "
                f"{count} hashes, found {size}); rebuild the index from the bank"
            )
        mapping = _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ)
    try:
        digest = hashlib.sha256()
        view = memoryview(mapping)
        step = 1 << 24
        for off in range(0, size - _DIGEST_SIZE, step):
            digest.update(view[off : min(off + step, size - _DIGEST_SIZE)])
        stored = bytes(view[size - _DIGEST_SIZE :])
        view.release()
        if digest.digest() != stored:
            raise ValueError(f"{source}: index checksum mismatch, the file is corrupt; rebuild the index from the bank")
        try:
            meta = json.loads(mapping[_HEADER_SIZE : _HEADER_SIZE + meta_len].decode())
        except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
            raise ValueError(f"{source}: index metadata is not valid JSON") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{source}: index metadata is not a JSON object")
        codes = np.frombuffer(mapping, dtype=np.uint8, count=count * PDQ_HASH_BYTES, offset=codes_offset)
        codes = codes.reshape(count, PDQ_HASH_BYTES)
        ids = np.frombuffer(mapping, dtype="<i8", count=count, offset=ids_offset)
        if next_id > _MAX_NEXT_ID:  # a larger next id would overflow int64 in add()
            raise ValueError(f"{source}: next id {next_id} does not fit in int64; the file is corrupt")
        if count and (ids[0] < 0 or not bool(np.all(ids[1:] > ids[:-1])) or next_id <= ids[-1]):
            raise ValueError(f"{source}: index ids are not strictly increasing; the file is corrupt")
        if keep_mapped:
            return codes, ids.astype(np.int64, copy=False), int(next_id), meta, mapping
        codes, ids = codes.copy(), ids.astype(np.int64, copy=True)
    except BaseException:
        codes = ids = None  # drop views of the mapping before closing it
        mapping.close()
        raise
    mapping.close()
    return codes, ids, int(next_id), meta, None
