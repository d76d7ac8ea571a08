"""PDQ hashing speed: ncii_hash against the ``pdqhash`` binding (and ``imagehash.phash`` for
context), single-threaded, on JPEGs made from real photos (project issues #2 and #11).

Measured, all in one process and interleaved round by round:

* ``hash_only/<size>``: from decoded RGB arrays, ``ncii_hash.hash_pixels(arr)`` vs
  ``pdqhash.compute(arr)``; the hashes must be bit-identical. Target: >= 10x pdqhash.
* ``end_to_end/<size>``: from the file, ``ncii_hash.pdq_hash(path)`` (exact and
  ``decode="fast"``) vs the usual ``pdqhash.compute(np.asarray(Image.open(p).convert("RGB")))``.
  Target: >= 5x pdqhash. For ``decode="fast"``: its speed-up over exact decoding and its
  Hamming distance to the exact hash.
* ``threads``: ``pdq_hash_many`` over a list of files, 2 threads vs 1. Target: >= 1.7x.
* ``simd/<size>``: hash-only at each SIMD level this CPU has (scalar, avx2, avx512).

Inputs: scikit-image's sample photos (astronaut, coffee, ...) cropped to 4:3, upscaled to
1024x768 and 4000x3000 with a seeded film grain (a smooth upscale would decode unrealistically
fast) and saved as quality-90 4:2:0 JPEGs, generated once into the cache directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import ncii_hash as nh
from ncii_hash import _core

if __package__ in (None, ""):  # run as a plain script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness  # noqa: E402

NAME = "hash"

#: Photographic samples shipped inside scikit-image (no download needed).
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle", "hubble_deep_field")
SIZES = {"1024x768": (1024, 768), "4000x3000": (4000, 3000)}
JPEG_QUALITY = 90
GRAIN_SIGMA = 2.5  # grey levels; seeded per photo and size
INPUT_VERSION = 1  # bump when the generation recipe changes, so the cache is rebuilt

TARGET_HASH_ONLY = 10.0
TARGET_END_TO_END = 5.0
TARGET_THREADS = 1.7
SIMD_ORDER = ("scalar", "avx2", "avx512")


# --------------------------------------------------------------------------------------------
# inputs


def sample_photo(name: str) -> np.ndarray:
    try:
        from skimage import data
    except ImportError as exc:
        raise ImportError("bench_hash makes its inputs from scikit-image's sample photos: "
                          "pip install '.[bench]' (or scikit-image)") from exc
    if name == "motorcycle":
        return data.stereo_motorcycle()[0]
    img = getattr(data, name)()
    return img[:, :, :3] if img.ndim == 3 else np.stack([img] * 3, axis=-1)


def make_jpeg(cache: Path, photo: str, size: tuple[int, int], seed: int) -> Path:
    """The benchmark JPEG for ``photo`` at ``size`` (w, h), generated once into ``cache``."""
    w, h = size
    path = cache / "images" / f"v{INPUT_VERSION}-{photo}-{w}x{h}.jpg"
    if path.is_file():
        return path
    src = sample_photo(photo)
    sh, sw = src.shape[:2]
    if sw * h > sh * w:  # too wide: crop the width to 4:3
        cw = sh * w // h
        src = src[:, (sw - cw) // 2:(sw - cw) // 2 + cw]
    else:
        ch = sw * h // w
        src = src[(sh - ch) // 2:(sh - ch) // 2 + ch]
    big = np.asarray(Image.fromarray(np.ascontiguousarray(src)).resize((w, h), Image.BICUBIC), dtype=np.float32)
    rng = np.random.default_rng([seed, PHOTOS.index(photo), w])
    big += rng.normal(0.0, GRAIN_SIGMA, size=(h, w, 1)).astype(np.float32)
    out = Image.fromarray(np.clip(big + 0.5, 0, 255).astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    out.save(tmp, format="JPEG", quality=JPEG_QUALITY, subsampling="4:2:0")
    tmp.replace(path)  # atomic: concurrent runs never see half a file
    return path


def decode_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def pdqhash_bytes(bits: np.ndarray) -> np.ndarray:
    """pdqhash returns 256 0/1 ints, most significant bit first: pack to our 32 bytes."""
    return np.packbits(np.asarray(bits).astype(np.uint8))


# --------------------------------------------------------------------------------------------
# the benchmark


def run(ctx: harness.Context) -> None:
    pdqhash = ctx.peer("pdqhash")
    imagehash = ctx.peer("imagehash", dist="ImageHash")
    photos = PHOTOS[: ctx.pick(2, len(PHOTOS))]
    files = {label: [make_jpeg(ctx.cache, p, size, ctx.seed) for p in photos] for label, size in SIZES.items()}
    ctx.config.update(
        photos=list(photos), sizes=list(SIZES), jpeg_quality=JPEG_QUALITY, grain_sigma=GRAIN_SIGMA,
        seed=ctx.seed, threads_compared=[1, 2], cache=str(ctx.cache / "images"),
        file_bytes={label: [f.stat().st_size for f in fs] for label, fs in files.items()},
        simd_levels=[lv for lv in SIMD_ORDER if SIMD_ORDER.index(lv) <= SIMD_ORDER.index(_core.detected_simd_level())],
    )
    ctx.note("single thread except 'threads'; times are per image; speed-up = peer time / ncii_hash time")

    for label, paths in files.items():
        hash_only(ctx, label, [decode_rgb(p) for p in paths], pdqhash, imagehash)
        end_to_end(ctx, label, paths, pdqhash, imagehash)
    threads(ctx, [p for ps in files.values() for p in ps] * ctx.pick(2, 2))
    for label, paths in files.items():
        simd_levels(ctx, label, [decode_rgb(p) for p in paths])
    plots(ctx)


def hash_only(ctx, label, arrays, pdqhash, imagehash) -> None:
    name = f"hash_only/{label}"

    def ours():
        for a in arrays:
            nh.hash_pixels(a)

    theirs = (lambda: [pdqhash.compute(a) for a in arrays]) if pdqhash else None
    phash = (lambda: [imagehash.phash(Image.fromarray(a)) for a in arrays]) if imagehash else None
    ctx.compare(name, {"ncii_hash": ours, "pdqhash": theirs, "imagehash.phash": phash}, items=len(arrays))
    ctx.ratio(name, "ncii_hash", "pdqhash", target=TARGET_HASH_ONLY)
    ctx.ratio(name, "ncii_hash", "imagehash.phash", label=f"{name} (phash, context)")
    if pdqhash:
        diffs, qual = [], []
        for a in arrays:
            r = nh.hash_pixels(a)
            bits, q = pdqhash.compute(a)
            diffs.append(int(nh.hamming(r.hash, pdqhash_bytes(bits))))
            qual.append(int(r.quality) == int(q))
        ctx.check(f"{name} bit-exact vs pdqhash", all(d == 0 for d in diffs) and all(qual),
                  hamming=diffs, quality_equal=qual)


def end_to_end(ctx, label, paths, pdqhash, imagehash) -> None:
    name = f"end_to_end/{label}"

    def ours():
        for p in paths:
            nh.pdq_hash(p)

    def ours_fast():
        for p in paths:
            nh.pdq_hash(p, decode="fast")

    def theirs():
        for p in paths:
            pdqhash.compute(np.asarray(Image.open(p).convert("RGB")))

    def phash():
        for p in paths:
            imagehash.phash(Image.open(p))

    ctx.compare(name, {"ncii_hash": ours, "ncii_hash fast": ours_fast,
                       "pdqhash": theirs if pdqhash else None,
                       "imagehash.phash": phash if imagehash else None}, items=len(paths))
    ctx.ratio(name, "ncii_hash", "pdqhash", target=TARGET_END_TO_END)
    ctx.ratio(name, "ncii_hash fast", "pdqhash", label=f"{name} (fast decode)")
    ctx.ratio(name, "ncii_hash fast", "ncii_hash", label=f"{name} fast vs exact decode")
    ctx.ratio(name, "ncii_hash", "imagehash.phash", label=f"{name} (phash, context)")

    exact = [nh.pdq_hash(p) for p in paths]
    fast = [nh.pdq_hash(p, decode="fast") for p in paths]
    dist = [int(nh.hamming(e.hash, f.hash)) for e, f in zip(exact, fast)]
    ctx.check(f"{name} decode=fast within the match threshold of exact",
              max(dist) <= nh.PDQ_MATCH_THRESHOLD, hamming=dist, mean=sum(dist) / len(dist), max=max(dist),
              quality_exact=[e.quality for e in exact], quality_fast=[f.quality for f in fast])
    if pdqhash:
        diffs = [int(nh.hamming(e.hash, pdqhash_bytes(pdqhash.compute(decode_rgb(p))[0])))
                 for e, p in zip(exact, paths)]
        ctx.check(f"{name} same hash as pdqhash's typical use", all(d == 0 for d in diffs), hamming=diffs)


def threads(ctx, paths) -> None:
    name = "threads/pdq_hash_many"
    cases = {f"{t} thread{'s' * (t > 1)}": (lambda t=t: nh.pdq_hash_many(paths, threads=t)) for t in (1, 2)}
    ctx.compare(name, cases, items=len(paths), repeats=ctx.pick(3, 7))
    ctx.ratio(name, "2 threads", "1 thread", target=TARGET_THREADS)
    a = nh.pdq_hash_many(paths, threads=1)
    b = nh.pdq_hash_many(paths, threads=2)
    ctx.check(f"{name} same hashes on 1 and 2 threads", bool(np.array_equal(a.hashes, b.hashes)) and not a.errors,
              items=len(paths), errors=len(a.errors) + len(b.errors))
    cores = ctx.config.setdefault("cores_usable", harness.machine_facts()["cores_usable"])
    if cores is not None and cores < 2:
        ctx.note(f"only {cores} usable core: the 2-thread figure cannot show scaling here")


def simd_levels(ctx, label, arrays) -> None:
    name = f"simd/{label}"
    levels = ctx.config["simd_levels"]
    before = _core.simd_level()

    def at(level):
        def go():
            _core.set_simd_cap(level)
            for a in arrays:
                nh.hash_pixels(a)
        return go

    try:
        ctx.compare(name, {lv: at(lv) for lv in levels}, items=len(arrays))
        hashes = {}
        for lv in levels:
            _core.set_simd_cap(lv)
            hashes[lv] = [nh.hash_pixels(a).hex for a in arrays]
    finally:
        _core.set_simd_cap(before)
    for lv in levels[1:]:
        ctx.ratio(name, lv, "scalar")
    ctx.check(f"{name} same hashes at every SIMD level", all(h == hashes["scalar"] for h in hashes.values()),
              levels=levels)


def plots(ctx) -> None:
    per_item = {(m["name"], m["subject"]): m["per_item_s"] * 1e3 for m in ctx.measurements}
    groups = [f"{kind}/{label}" for kind in ("hash_only", "end_to_end") for label in SIZES]
    subjects = ("ncii_hash", "ncii_hash fast", "pdqhash", "imagehash.phash")
    ctx.plot_bars("hash.png", "PDQ per image, single thread (lower is better)",
                  [g.replace("/", "\n") for g in groups],
                  {s: [per_item.get((g, s)) for g in groups] for s in subjects
                   if any((g, s) in per_item for g in groups)},
                  ylabel="ms per image (log)", log=True)
    levels = ctx.config["simd_levels"]
    ctx.plot_bars("hash_simd.png", "Hash-only by SIMD level (lower is better)", list(SIZES),
                  {lv: [per_item.get((f"simd/{label}", lv)) for label in SIZES] for lv in levels},
                  ylabel="ms per image (log)", log=True)


def main(argv=None) -> int:
    return harness.main(run, NAME, argv)


if __name__ == "__main__":
    sys.exit(main())
