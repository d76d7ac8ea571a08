"""Fuzz targets for every parser that reads untrusted bytes.

Each target is ``fn(data: bytes) -> None``. It feeds ``data`` to one parser and returns
normally when the parser either accepts the input or refuses it with the documented
exception (a ``ValueError`` subclass naming the input). Anything else -- another exception
type, a crash of the C++ core, a hang -- escapes and is a finding.

The targets are plain Python so that the same functions serve atheris (``fuzz/run.py``),
the seeded fallback mutator (``fuzz/mutate.py``) and the regression tests.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

# Everything heavy is imported lazily, inside ``setup()``, so atheris can instrument it.
_state: dict = {}

#: Image fuzzing refuses anything above this many pixels before decoding: it keeps each
#: execution short without weakening the check being fuzzed (the limit logic is the same).
FUZZ_MAX_PIXELS = 4_000_000


def _scratch() -> Path:
    """A private scratch folder, on tmpfs when there is one (many small writes per second)."""
    if "scratch" not in _state:
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        _state["scratch"] = Path(tempfile.mkdtemp(prefix="ncii-fuzz-", dir=base))
    return _state["scratch"]


def _write(name: str, data: bytes) -> Path:
    p = _scratch() / name
    p.write_bytes(data)
    return p


# ---------------------------------------------------------------- image bytes -> PDQ
def fuzz_image(data: bytes) -> None:
    from ncii_hash import pdq_hash
    from ncii_hash.image.io import ImageError

    try:
        res = pdq_hash(data, max_pixels=FUZZ_MAX_PIXELS, dihedral=bool(data[-1:] == b"\x01"))
    except ImageError:
        return
    if res.hash.shape != (32,) or not 0 <= res.quality <= 100:
        raise AssertionError(f"bad PDQ result {res!r}")


# ---------------------------------------------------------------- hex parsing
def fuzz_hex(data: bytes) -> None:
    from ncii_hash.hashes import from_hex, to_hex

    text = data.decode("utf-8", "surrogateescape")
    for source in (text, data, text.splitlines() or [""]):
        try:
            out = from_hex(source)
        except ValueError:
            continue
        # Anything accepted must round-trip to the same bytes through our own formatter.
        arr = out.reshape(-1, 32)
        again = from_hex(to_hex(arr))
        if not np.array_equal(again, arr):
            raise AssertionError("hex round trip changed the hash")


# ---------------------------------------------------------------- submission JSON
def fuzz_submission(data: bytes) -> None:
    from ncii_hash.submission import SubmissionError, read_submission, write_submission

    path = _write("submission.json", data)
    try:
        sub = read_submission(path)
    except SubmissionError:
        return
    # An accepted submission must survive our own writer and reader unchanged (as a set).
    out = _scratch() / "roundtrip.json"
    write_submission(out, sub)
    again = read_submission(out)
    key = sorted(zip(map(bytes, sub.hashes), sub.qualities.tolist()))
    if key != sorted(zip(map(bytes, again.hashes), again.qualities.tolist())):
        raise AssertionError("submission round trip changed the items")


# ---------------------------------------------------------------- bank CSV import
def fuzz_bank_csv(data: bytes) -> None:
    from ncii_hash.bank import BankError, HashBank

    if "bank" not in _state:
        _state["bank"] = HashBank(_scratch() / "fuzz-bank.db", snapshot=False)
    bank = _state["bank"]
    path = _write("import.csv", data)
    before = len(bank)
    try:
        bank.import_(path, allow_low_quality=bool(data[:1] == b"a"))
    except BankError:
        if len(bank) != before:
            raise AssertionError("a refused import changed the bank")
        return


# ---------------------------------------------------------------- HashIndex.load
_INDEX_DIGEST = 32


def fuzz_index_load(data: bytes) -> None:
    """Mutated index files. The first byte chooses whether the trailing SHA-256 is recomputed
    after mutation: without that, nearly every mutation would stop at the checksum and the
    header, metadata and id checks behind it would never be reached."""
    from ncii_hash.index import HashIndex

    if not data:
        return
    fix_digest, mmap, body = data[0] & 1, bool(data[0] & 2), data[1:]
    if fix_digest and len(body) > _INDEX_DIGEST:
        body = body[:-_INDEX_DIGEST] + hashlib.sha256(body[:-_INDEX_DIGEST]).digest()
    path = _write("fuzz.idx", body)
    try:
        index = HashIndex.load(path, mmap=mmap)
    except ValueError:
        return
    ids = index.ids
    if len(ids):
        codes = np.zeros((1, 32), np.uint8)
        res = index.range_search(codes, 256)
        if sorted(res.ids.tolist()) != ids.tolist():
            raise AssertionError("radius-256 search must return every live id")
        index.remove(ids[:1])
        index.add(codes)  # a loaded index must stay writable
    del index


# ---------------------------------------------------------------- video
def fuzz_video_open(data: bytes) -> None:
    """Mutated video files, decoded in process (the subprocess guard is deliberately off: a
    decoder crash here is a finding for the in-process mode and would kill the fuzzer)."""
    from ncii_hash.video import VideoError, hash_video

    path = _write("fuzz.mp4", data)
    try:
        hash_video(path, in_process=True, max_frames=120, max_duration=60.0, max_pixels=1_000_000,
                   timeout=10.0, seconds_per_hash=0.5, threads=1)
    except VideoError:
        return


def fuzz_vpdq_text(data: bytes) -> None:
    from ncii_hash.video import VideoError, VideoHash

    text = data.decode("utf-8", "replace")
    try:
        VideoHash.from_vpdq_lines(text.splitlines())
    except VideoError:
        return


TARGETS = {
    "image": fuzz_image,
    "hex": fuzz_hex,
    "submission": fuzz_submission,
    "bank_csv": fuzz_bank_csv,
    "index_load": fuzz_index_load,
    "video": fuzz_video_open,
    "vpdq_text": fuzz_vpdq_text,
}


# ---------------------------------------------------------------- seed corpora
def _conformance() -> Path | None:
    here = Path(__file__).resolve().parent.parent
    for cand in (here.parent / "shared" / "conformance", here / ".." / ".." / "shared" / "conformance"):
        if cand.is_dir():
            return cand
    env = os.environ.get("NCII_CONFORMANCE")
    return Path(env) if env and Path(env).is_dir() else None


def _small_images() -> dict:
    import io

    from PIL import Image

    rng = np.random.default_rng(1234)
    out = {}
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    for fmt, mode, ext in (("PNG", "RGB", "png"), ("PNG", "LA", "png"), ("PNG", "I;16", "png"),
                           ("JPEG", "RGB", "jpg"), ("JPEG", "CMYK", "jpg"), ("WEBP", "RGB", "webp"),
                           ("GIF", "P", "gif"), ("BMP", "RGB", "bmp"), ("TIFF", "RGB", "tif")):
        img = Image.fromarray(rgb)
        img = img.convert("I;16") if mode == "I;16" else img.convert(mode)
        buf = io.BytesIO()
        img.save(buf, fmt)
        out[f"gen-{mode.replace(';', '')}.{ext}"] = buf.getvalue()
    return out


def write_seeds(target: str, folder: Path, *, max_bytes: int = 200_000) -> int:
    """Fill ``folder`` with seed inputs for ``target``; returns how many."""
    from ncii_hash.submission import make_submission, write_submission
    from ncii_hash.index import HashIndex

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    seeds: dict = {}
    conf = _conformance()
    hexes = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(4)]
    if target == "image":
        seeds.update(_small_images())
        if conf is not None:
            for p in sorted((conf / "pdq" / "data").rglob("*")):
                if p.is_file() and p.stat().st_size <= max_bytes:
                    seeds[f"conf-{len(seeds)}{p.suffix}"] = p.read_bytes()
    elif target == "hex":
        seeds.update({f"h{i}": h.encode() for i, h in enumerate(hexes)})
        seeds["upper"] = hexes[0].upper().encode()
        seeds["lines"] = "\n".join(hexes).encode()
        seeds["spaces"] = f"  {hexes[1]}\t\r\n".encode()
    elif target == "submission":
        sub = make_submission(rng.integers(0, 256, (3, 32), dtype=np.uint8), [100, 49, 0])
        write_submission(folder / "valid.json", sub)
        seeds["empty-items"] = (b'{"format":"ncii-hash-submission","version":1,"algorithm":"pdq",'
                                b'"items":[],"counts":{"items":0}}')
    elif target == "bank_csv":
        seeds["header"] = f"pdq,quality,case_id,kind\n{hexes[0]},100,case-a,image\n{hexes[1]},60,case-a,video_frame\n".encode()
        seeds["bare"] = f"{hexes[2]}\n{hexes[3]},90\n".encode()
        seeds["comment"] = f"# partner list\n{hexes[0]},70,c:1,image\n".encode()
    elif target == "index_load":
        for n, removed in ((0, 0), (3, 1), (70, 5)):
            index = HashIndex()
            index.add(rng.integers(0, 256, (n, 32), dtype=np.uint8))
            if removed:
                index.remove(np.arange(removed))
            path = folder / f"idx-{n}.tmp"
            index.save(path)
            body = path.read_bytes()
            path.unlink()
            for flag in (0, 1, 3):
                seeds[f"idx-{n}-f{flag}"] = bytes([flag]) + body
    elif target == "video":
        if conf is not None:
            for p in sorted((conf / "vpdq" / "sample-videos").glob("*")):
                if p.is_file() and p.stat().st_size <= max_bytes * 10:
                    seeds[f"conf-{p.name}"] = p.read_bytes()
        local = Path(__file__).resolve().parent.parent / "tests" / "data" / "vpdq"
        for p in sorted(local.rglob("*.mp4")) if local.is_dir() else []:
            if p.stat().st_size <= max_bytes * 10:
                seeds[f"local-{p.name}"] = p.read_bytes()
    elif target == "vpdq_text":
        seeds["lines"] = "\n".join(f"{i},{90 - i},{h},{i * 0.5:.3f}" for i, h in enumerate(hexes)).encode()
    for name, data in seeds.items():
        (folder / name).write_bytes(data)
    return len(list(folder.iterdir()))

