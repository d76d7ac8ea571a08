"""The one checksummed file container: named numpy arrays + JSON metadata, used by every
derived-data file (the HashIndex file, the FeatureIndex file) and by HashIndex's bytes form.

Layout (little-endian), version ``kind.version`` of a file kind named by its magic::

    0    magic (8 bytes, names the kind), version (u32), metadata length M (u64)
    20   metadata: M bytes of UTF-8 JSON {"arrays": {name: {"dtype", "shape", "offset"}},
         "meta": {...}}  ("meta" is omitted when empty)
    ...  zero padding to a multiple of 64: this is the array base B
    B    the arrays in metadata order, array i at B + offset_i, each C-ordered and zero-padded
         to a multiple of 64 bytes (so a memory map serves aligned SIMD loads), no gaps
    end  SHA-256 of every byte before it (32 bytes)

This is exactly the FeatureIndex file of ncii_hash 0.x (magic ``NCIIFIDX``, version 1), which
is therefore a version-1 container. Writers replace files atomically and owner-only
(:func:`ncii_hash._util.files.atomic_private_file`). Readers check the magic, the version, the
header bounds and then the SHA-256 over the whole file before reading the metadata or any array;
only then is the layout parsed (and checked to be canonical and to end exactly at the
checksum). Anything else raises :class:`ncii_hash.errors.IndexFileError` (a ValueError) naming
the file and telling the caller to rebuild it from the bank. The checksum detects damage, not
an attacker (anyone can recompute it): the owner of a kind still validates its arrays.
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap as _mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Union

import numpy as np

from ..errors import IndexFileError
from .files import atomic_private_file

HEADER = struct.Struct("<8sIQ")  # magic, version, metadata length
ALIGN = 64
DIGEST_SIZE = 32  # SHA-256
MAX_META = 1 << 20
_CHUNK = 1 << 24

Buffer = Union[bytes, np.ndarray, _mmap.mmap]


@dataclass(frozen=True)
class ContainerKind:
    """What a container file holds: its magic, the version written and read, and how errors
    name it (``what`` is a phrase such as "a ncii_hash index file")."""

    magic: bytes
    version: int
    what: str
    rebuild: str  #: the remedy, e.g. "rebuild the index from the bank"


@dataclass(frozen=True, eq=False)
class Container:
    """A verified container: its metadata and its arrays (views of ``buffer``; read-only when
    ``buffer`` is a file mapping or ``bytes``)."""

    meta: dict
    arrays: dict = field(default_factory=dict)
    buffer: Any = None


# ---- writing -------------------------------------------------------------------------------
def _chunks(kind: ContainerKind, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]):
    layout, pos = {}, 0
    for name, a in arrays.items():
        layout[name] = {"dtype": np.dtype(a.dtype).str, "shape": list(a.shape), "offset": pos}
        pos += -(-a.nbytes // ALIGN) * ALIGN
    doc: dict = {"arrays": layout}
    if meta:
        doc["meta"] = dict(meta)
    raw_meta = json.dumps(doc).encode()
    head = HEADER.pack(kind.magic, kind.version, len(raw_meta)) + raw_meta
    yield head + b"\0" * (-len(head) % ALIGN)
    for a in arrays.values():
        flat = memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8))
        for start in range(0, flat.nbytes, 1 << 26):
            yield flat[start : start + (1 << 26)]
        yield b"\0" * (-flat.nbytes % ALIGN)


def _emit(out: IO[bytes], kind: ContainerKind, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    digest = hashlib.sha256()
    for chunk in _chunks(kind, arrays, meta):
        out.write(chunk)
        digest.update(chunk)
    out.write(digest.digest())


def write_container(target: os.PathLike | str, kind: ContainerKind, arrays: Mapping[str, np.ndarray],
                    meta: Mapping[str, Any]) -> None:
    """Replace ``target`` atomically (mode 0600) with a container of ``arrays`` and ``meta``."""
    with atomic_private_file(target) as f:
        _emit(f, kind, arrays, meta)


def container_bytes(kind: ContainerKind, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> bytes:
    """The same container as :func:`write_container` writes, in memory."""
    out = io.BytesIO()
    _emit(out, kind, arrays, meta)
    return out.getvalue()


# ---- reading -------------------------------------------------------------------------------
def load_buffer(path: os.PathLike | str, *, mmap: bool) -> Buffer:
    """The whole file: a read-only mapping, or a private 64-byte aligned writable copy.

    Raises FileNotFoundError when there is no file."""
    source = Path(os.fspath(path))
    with open(source, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if mmap and size:
            return _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ)
        raw = np.empty(size + ALIGN, dtype=np.uint8)
        start = (-raw.ctypes.data) % ALIGN
        buf = raw[start : start + size]
        view = memoryview(buf)
        got = 0
        while got < size:
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
        return buf[:got]


def header_of(buf: Buffer) -> tuple[bytes, int]:
    """(magic, version) of a buffer holding at least 12 bytes, else (b"", -1)."""
    if len(buf) < 12:
        return b"", -1
    head = bytes(memoryview(buf)[:12])
    return head[:8], struct.unpack_from("<I", head, 8)[0]


def parse_container(buf: Buffer, kind: ContainerKind, source: str) -> Container:
    """Verify and parse a whole container held in ``buf`` (see the module docstring)."""
    size = len(buf)
    fail = _failer(kind, source)
    view = memoryview(buf).cast("B")
    try:
        if bytes(view[:8]) != kind.magic:
            raise IndexFileError(f"{source} is not {kind.what} (bad magic); {kind.rebuild}")
        if size < HEADER.size:
            fail(f"is truncated ({size} bytes)")
        _, version, meta_len = HEADER.unpack_from(view)
        if version != kind.version:
            newer = " (written by a newer ncii_hash)" if version > kind.version else ""
            raise IndexFileError(
                f"{source}: format version {version} is not supported{newer}; this ncii_hash reads "
                f"version {kind.version}; {kind.rebuild}"
            )
        base = HEADER.size + meta_len + (-(HEADER.size + meta_len) % ALIGN)
        if meta_len > MAX_META or base + DIGEST_SIZE > size:
            fail(f"is truncated or corrupt (header says {meta_len} bytes of metadata, the file has {size})")
        digest = hashlib.sha256()
        for off in range(0, size - DIGEST_SIZE, _CHUNK):
            digest.update(view[off : min(off + _CHUNK, size - DIGEST_SIZE)])
        if digest.digest() != bytes(view[size - DIGEST_SIZE :]):
            fail("is truncated or corrupt (SHA-256 checksum mismatch)")
        raw_meta = bytes(view[HEADER.size : HEADER.size + meta_len])
    finally:
        view.release()
    try:
        doc = json.loads(raw_meta.decode())
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        fail("metadata is not valid JSON")
    if not isinstance(doc, dict) or not isinstance(doc.get("arrays"), dict):
        fail("metadata is not a JSON object with an array table")
    meta = doc.get("meta", {})
    if not isinstance(meta, dict):
        fail("metadata is not a JSON object")
    specs = [(name, _array_spec(spec, fail, name)) for name, spec in doc["arrays"].items()]
    pos, arrays = 0, {}
    for name, (dtype, shape, offset) in specs:
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if offset != pos or base + pos + nbytes > size - DIGEST_SIZE:
            fail(f"array {name!r} is not where the layout puts it")
        pos += -(-nbytes // ALIGN) * ALIGN
        arrays[name] = (dtype, shape, base + offset)
    if base + pos + DIGEST_SIZE != size:
        fail(f"is truncated or corrupt (the layout ends at {base + pos + DIGEST_SIZE} bytes, the file has {size})")
    out = {
        name: np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape, dtype=object)), offset=start).reshape(shape)
        for name, (dtype, shape, start) in arrays.items()
    }
    return Container(meta, out, buf)


def read_container(path: os.PathLike | str, kind: ContainerKind, *, mmap: bool) -> Container:
    """Load ``path`` (memory-mapped read-only, or copied) and verify it like
    :func:`parse_container`."""
    buf = load_buffer(path, mmap=mmap)
    try:
        return parse_container(buf, kind, str(path))
    except BaseException:
        release(buf)
        raise


def release(buf: Buffer) -> None:
    """Close a file mapping now (a no-op for memory); views of it must be gone."""
    if isinstance(buf, _mmap.mmap):
        try:
            buf.close()
        except BufferError:  # pragma: no cover - a view is still alive; the GC closes it
            pass


def _failer(kind: ContainerKind, source: str) -> Callable[[str], Any]:
    def fail(reason: str):
        raise IndexFileError(f"{source}: {reason}; {kind.rebuild}")

    return fail


def _array_spec(spec: object, fail: Callable[[str], Any], name: str) -> tuple[np.dtype, tuple, int]:
    try:
        dtype = np.dtype(spec["dtype"])  # type: ignore[index]
        shape = tuple(spec["shape"])  # type: ignore[index]
        offset = spec["offset"]  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        fail(f"array {name!r} has a malformed description")
    ok = (dtype.kind in "biuf" and not dtype.fields and dtype.byteorder != ">" and dtype.itemsize > 0
          and isinstance(offset, int) and offset >= 0
          and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape))
    if not ok:
        fail(f"array {name!r} has an unsupported dtype, shape or offset")
    return dtype, shape, offset
