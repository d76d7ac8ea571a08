"""A small seeded mutation fuzzer: the fallback when atheris is not installed, and the engine
of the CI smoke run (deterministic for a given seed and corpus, no coverage feedback).

Mutations: bit flips, byte replacement with boundary values, insertion and deletion of
runs, duplication of a chunk, truncation, splicing two corpus entries, and replacing a
4- or 8-byte little-endian field with an interesting integer (sizes and counts live in
such fields in every binary format the targets read).
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

_INTERESTING = (0, 1, 2, 31, 32, 63, 64, 127, 128, 255, 256, 1 << 15, 65535, 1 << 16, 1 << 31,
                (1 << 31) - 1, (1 << 32) - 1, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1)
_TOKENS = (b"\x00", b"\xff", b"\n", b",", b'"', b"{", b"}", b"[", b"]", b":", b"-1", b"1e999",
           b"NaN", b"null", b"true", b"\\u0000", b"\xed\xa0\x80", b"\r\n", b"#", b" ")


def mutate(data: bytes, rng: random.Random, corpus: list) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 6))):
        op = rng.randrange(9)
        n = len(buf)
        if op == 0 and n:
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[rng.randrange(n)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:
            i = rng.randrange(n + 1)
            buf[i:i] = rng.choice(_TOKENS) * rng.choice((1, 1, 2, 16))
        elif op == 3 and n:
            i = rng.randrange(n)
            del buf[i : i + rng.choice((1, 2, 4, 16, 256))]
        elif op == 4 and n:
            i = rng.randrange(n)
            j = min(n, i + rng.choice((1, 4, 32, 512)))
            buf[j:j] = buf[i:j] * rng.choice((1, 2, 8))
        elif op == 5 and n:
            del buf[rng.randrange(n) :]
        elif op == 6 and corpus:
            other = rng.choice(corpus)
            if other:
                cut = rng.randrange(len(other))
                buf = buf[: rng.randrange(n + 1)] + other[cut:]
        elif op in (7, 8) and n >= 8:
            width = 4 if op == 7 else 8
            i = rng.randrange(n - width + 1)
            value = rng.choice(_INTERESTING) % (1 << (8 * width))
            buf[i : i + width] = value.to_bytes(width, "little")
    return bytes(buf)


def fuzz(
    fn: Callable[[bytes], None], corpus_dir: Path, *, seconds: float = 0, iterations: int = 0,
    seed: int = 0, crashes: Path | None = None, name: str = "target",
) -> dict:
    """Run ``fn`` on mutations of the corpus for ``seconds`` (or ``iterations``). Every
    exception escaping ``fn`` is a finding: its input is saved to ``crashes`` and counted."""
    rng = random.Random(seed)
    corpus = [p.read_bytes() for p in sorted(Path(corpus_dir).iterdir()) if p.is_file()] or [b""]
    findings = 0
    seen: set = set()
    start = time.monotonic()
    execs = 0
    for data in list(corpus):  # every seed once, unmutated
        findings += _one(fn, data, crashes, name, seen)
        execs += 1
    while True:
        if iterations and execs >= iterations:
            break
        if not iterations and time.monotonic() - start >= seconds:
            break
        data = mutate(rng.choice(corpus), rng, corpus)
        findings += _one(fn, data, crashes, name, seen)
        execs += 1
    elapsed = max(time.monotonic() - start, 1e-9)
    return {"executions": execs, "exec_per_sec": execs / elapsed, "findings": findings}


def _one(fn: Callable[[bytes], None], data: bytes, crashes: Path | None, name: str, seen: set) -> int:
    try:
        fn(data)
        return 0
    except Exception as exc:
        sig = (type(exc).__name__, traceback.extract_tb(exc.__traceback__)[-1][:2])
        first = sig not in seen
        seen.add(sig)
        if crashes is not None:
            crashes.mkdir(parents=True, exist_ok=True)
            (crashes / f"{name}-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
        if first:
            print(f"FINDING in {name}: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr, flush=True)
            traceback.print_exc()
        return 1
