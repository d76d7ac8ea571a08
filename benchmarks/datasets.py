"""Real photos for the matching-quality benchmark, gathered offline from installed packages.

``python -m benchmarks.datasets [--cache DIR] [--install]`` finds every photo source listed in
:data:`SOURCES` that is installed on this machine, normalises each image (RGB, alpha composited
on white, longest side at most :data:`MAX_SIDE`, saved as lossless PNG) into
``<cache>/photos/`` and writes ``<cache>/photos/manifest.json`` (schema :data:`MANIFEST_SCHEMA`).
Sources that are missing are skipped and listed in the manifest. ``--install`` first runs
``apt-get install`` for the Debian packages that ship photos (root only; never needed offline).

Every manifest entry says where the image came from (package, path inside it or inside the
Qt resource file) and the package-level licence; per-file licences are in the package's
``/usr/share/doc/<package>/copyright``, which the entry names.

Groups: images of one scene (stereo pairs, calibration series, the same animal in two
activities) share a ``group``. The benchmark only ever counts pairs from *different* groups
as "distinct", so a missed grouping makes the false-match rate look worse, never better.
``domain`` is ``photo`` or ``astro``: astrophotos (dark, sparse) are a narrow domain reported
on its own.

Nothing here touches the network. Images stay outside the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
from PIL import Image

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness  # noqa: E402

MANIFEST_SCHEMA = "ncii_hash-photos/1"
MAX_SIDE = 1024  # photos are downscaled once so edits and hashing stay fast; PDQ works at 64x64
MIN_SIDE = 200  # icons and thumbnails are not photos
DATASET_VERSION = 2

#: Debian packages that ship photos (``--install``). All are optional.
DEBIAN_PACKAGES = ("gcompris-qt-data", "opencv-doc", "mate-backgrounds", "ukui-wallpapers",
                   "lomiri-wallpapers", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04",
                   "plasma-workspace-wallpapers")

MANIFEST_FIELDS = ("id", "file", "group", "domain", "source", "package", "origin", "licence",
                   "copyright_file", "width", "height", "sha256")


@dataclass(frozen=True)
class Photo:
    """One manifest entry (the JSON object, field for field)."""

    id: str
    file: str  #: PNG file name inside the photos directory
    group: str  #: scene group; distinct pairs come from different groups
    domain: str  #: "photo" | "astro"
    source: str  #: which SOURCES entry found it
    package: str  #: Debian or PyPI distribution that ships it
    origin: str  #: path of the original (``file.rcc:/inner/path`` inside Qt resources)
    licence: str  #: package-level licence summary
    copyright_file: Optional[str]
    width: int
    height: int
    sha256: str  #: of the normalised PNG's pixels


@dataclass(frozen=True)
class Found:
    """A candidate image before normalisation."""

    key: str  #: unique, stable name, used for the id
    group: str
    domain: str
    origin: str
    load: Callable[[], Image.Image]


# --------------------------------------------------------------------------------------------
# grouping helpers


def scene_stem(name: str) -> str:
    """Name without extension, resolution, digits and side markers: ``left03.jpg`` -> ``left``,
    ``aloeL.jpg`` -> ``aloe``, ``Elephants_3840x2160`` -> ``elephants``."""
    stem = Path(name).stem
    stem = re.sub(r"\d+x\d+", "", stem)
    stem = re.sub(r"(?<=[a-z])[LR]$", "", stem)  # stereo pairs aloeL/aloeR
    stem = re.sub(r"[\d_\-\s.]+", " ", stem).strip().lower()
    for side in (" left", " right", "left", "right"):
        if stem.endswith(side) and stem != side:
            stem = stem[: -len(side)].strip()
    return stem or Path(name).stem.lower()


# --------------------------------------------------------------------------------------------
# Qt resource files (GCompris ships its activity photos inside .rcc bundles)


def rcc_entries(path: Path) -> Iterator[tuple[str, int, bytes]]:
    """Yield (inner path, flags, payload) of every file in a Qt ``.rcc`` bundle.

    Layout (Qt's rcc format, versions 1-3): a 20-byte header (magic ``qres``, version, tree,
    data and names offsets), a tree of 14-byte (v1) or 22-byte (v2+) nodes, big-endian.
    Flags: 1 = zlib-compressed, 2 = directory, 4 = zstd-compressed. Only uncompressed payloads
    are used here (images are stored raw: they do not compress).
    """
    blob = path.read_bytes()
    magic, version, tree, data, names = struct.unpack(">4sIIII", blob[:20])
    if magic != b"qres" or version not in (1, 2, 3):
        raise ValueError(f"{path}: not a Qt resource file (magic {magic!r}, version {version})")
    node = 14 if version == 1 else 22

    def name(off: int) -> str:
        n = struct.unpack(">H", blob[names + off:names + off + 2])[0]
        return blob[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    stack = [(0, "")]
    while stack:
        i, prefix = stack.pop()
        o = tree + i * node
        name_off, flags = struct.unpack(">IH", blob[o:o + 6])
        full = f"{prefix}/{name(name_off)}" if i else ""
        if flags & 2:
            count, first = struct.unpack(">II", blob[o + 6:o + 14])
            stack.extend((c, full) for c in range(first + count - 1, first - 1, -1))
        else:
            off = struct.unpack(">I", blob[o + 10:o + 14])[0]
            size = struct.unpack(">I", blob[data + off:data + off + 4])[0]
            yield full, flags, blob[data + off + 4:data + off + 4 + size]


# --------------------------------------------------------------------------------------------
# sources


def _open(path: Path) -> Callable[[], Image.Image]:
    return lambda: Image.open(path)


def _skimage() -> Iterator[Found]:
    try:
        import skimage
    except ImportError:
        return
    d = Path(skimage.__file__).parent / "data"
    photos = {"astronaut.png": "photo", "coffee.png": "photo", "chelsea.png": "photo",
              "rocket.jpg": "photo", "motorcycle_left.png": "photo", "camera.png": "photo",
              "hubble_deep_field.jpg": "astro"}
    for fname, domain in photos.items():
        if (d / fname).is_file():
            yield Found(f"skimage-{Path(fname).stem}", f"skimage:{scene_stem(fname)}", domain,
                        str(d / fname), _open(d / fname))


def _matplotlib() -> Iterator[Found]:
    try:
        import matplotlib
    except ImportError:
        return
    p = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if p.is_file():
        yield Found("mpl-grace_hopper", "mpl:grace hopper", "photo", str(p), _open(p))


#: OpenCV's sample photos; image series of one scene share a group (by :func:`scene_stem`).
OPENCV_PHOTOS = (
    "HappyFish.jpg", "aero1.jpg", "aero3.jpg",
    "aloeL.jpg", "aloeR.jpg", "apple.jpg", "baboon.jpg", "basketball1.png", "basketball2.png",
    "board.jpg", "box_in_scene.png", "building.jpg", "butterfly.jpg", "ela_original.jpg",
    "fruits.jpg", "graf1.png", "graf3.png", "home.jpg", "left01.jpg", "leuvenA.jpg",
    "leuvenB.jpg", "lena.jpg", "messi5.jpg", "orange.jpg", "rubberwhale1.png", "rubberwhale2.png",
    "squirrel_cls.jpg", "stuff.jpg", "tsukuba_l.png",
)
OPENCV_GROUPS = {"aero": "aero", "ela original": "ela", "box in scene": "box"}


def _opencv_doc() -> Iterator[Found]:
    d = Path("/usr/share/doc/opencv-doc/examples/data")
    for fname in OPENCV_PHOTOS:
        p = d / fname
        if p.is_file():
            stem = scene_stem(fname)
            yield Found(f"opencv-{Path(fname).stem}", "opencv:" + OPENCV_GROUPS.get(stem, stem),
                        "photo", str(p), _open(p))


def _wallpapers() -> Iterator[Found]:
    # mate "nature" and the Lomiri/UKUI *.jpg are photographs; the PNGs are mostly drawings.
    for p in sorted(Path("/usr/share/backgrounds/mate/nature").glob("*.jpg")):
        yield Found(f"mate-{p.stem}", f"wall:{scene_stem(p.name)}", "photo", str(p), _open(p))
    for p in sorted(Path("/usr/share/backgrounds").glob("*.jpg")):
        if p.stem in WALLPAPER_NOT_PHOTOS:
            continue
        yield Found(f"bg-{p.stem}", f"wall:{scene_stem(p.name)}", "photo", str(p), _open(p))
    # Plasma: one folder per wallpaper, several resolutions of one picture: take the largest.
    for folder in sorted(Path("/usr/share/wallpapers").glob("*/contents/images")):
        name = folder.parent.parent.name
        if name not in PLASMA_PHOTOS:
            continue
        files = sorted(folder.glob("*.*"), key=lambda f: f.stat().st_size)
        if files:
            domain = "astro" if name == "MilkyWay" else "photo"
            yield Found(f"plasma-{name}", f"wall:{name.lower()}", domain, str(files[-1]), _open(files[-1]))


#: Checked by eye on a contact sheet: these JPEGs are drawings, renders or patterns.
WALLPAPER_NOT_PHOTOS = {"analogpattern_by_Peter_Nerlich", "Painting-Colors_by__herobrine7gamer",
                        "Infinite-Sea_by_Aury88", "string", "rhythm", "2004default",
                        "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
                        "Picture_1A_by_freespace", "firstgeneration", "the-mouse"}
PLASMA_PHOTOS = {"Altai", "Autumn", "BytheWater", "Canopee", "Cascade", "ColdRipple",
                 "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey", "Kite",
                 "MilkyWay", "Path", "Shell", "summer_1am"}

#: GCompris activities whose images are photographs (animals, monuments, objects, instruments);
#: "lang" and "paintings" are drawings and artworks and stay out.
GCOMPRIS_PHOTO_BUNDLES = {"erase": "photo", "explore_monuments": "photo",
                          "explore_world_animals": "photo", "explore_farm_animals": "photo",
                          "explore_world_music": "photo", "categorization": "photo",
                          "solar_system": "astro"}


#: Same photograph shipped under two names (found by looking at the closest distinct pairs of a
#: first run and checked by eye): one group.
GCOMPRIS_SAME_SCENE = {"greatpyramid": "greatpyramidofgiza"}


def _gcompris() -> Iterator[Found]:
    d = Path("/usr/share/gcompris-qt/rcc")
    for bundle, domain in GCOMPRIS_PHOTO_BUNDLES.items():
        rcc = d / f"{bundle}.rcc"
        if not rcc.is_file():
            continue
        for inner, flags, payload in rcc_entries(rcc):
            if flags != 0 or not inner.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
                continue
            stem = scene_stem(inner.rsplit("/", 1)[-1])
            # the same animal or object appears in several activities: one group per name
            stem = GCOMPRIS_SAME_SCENE.get(stem, stem)
            group = f"gcompris:{stem}" if domain == "photo" else "gcompris:solar system"
            inner_stem = inner.split("/resource/")[-1].rsplit(".", 1)[0]
            key = f"gcompris-{bundle}-" + re.sub(r"[^A-Za-z0-9]+", "_", inner_stem)
            yield Found(key, group, domain, f"{rcc}:{inner}",
                        lambda data=payload: Image.open(io.BytesIO(data)))


#: (name, package, licence summary, finder)
SOURCES: tuple[tuple[str, str, str, Callable[[], Iterator[Found]]], ...] = (
    ("skimage", "scikit-image", "per file, see skimage/data/README.txt (public domain, CC0, CC-BY)", _skimage),
    ("matplotlib", "matplotlib", "public domain (US Navy photo), see matplotlib sample_data README", _matplotlib),
    ("opencv-doc", "opencv-doc", "per file, see copyright (BSD/Apache sample data)", _opencv_doc),
    ("wallpapers", "mate-backgrounds, ukui-wallpapers, lomiri-wallpapers*, plasma-workspace-wallpapers",
     "GPL-2+, CC-BY-SA-3.0/4.0, CC-BY-4.0, CC0 (per file, see copyright)", _wallpapers),
    ("gcompris", "gcompris-qt-data", "per file: CC-BY(-SA) 2.0-4.0, CC0, public domain, GPL-3+ (see copyright)", _gcompris),
)


def _package_of(origin: str, default: str) -> str:
    for pkg, marker in (("mate-backgrounds", "/mate/"), ("plasma-workspace-wallpapers", "/wallpapers/")):
        if marker in origin:
            return pkg
    if origin.startswith("/usr/share/backgrounds/"):
        owner = subprocess.run(["dpkg", "-S", origin], capture_output=True, text=True)
        if owner.returncode == 0:
            return owner.stdout.split(":", 1)[0]
    return default


# --------------------------------------------------------------------------------------------
# normalisation and the manifest


def normalise(im: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """RGB, alpha composited on white, longest side <= ``max_side`` (Lanczos)."""
    im.load()
    if im.mode in ("RGBA", "LA", "P"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    im = im.convert("RGB")
    w, h = im.size
    if max(w, h) > max_side:
        s = max_side / max(w, h)
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
    return im


def gather(cache: Path, *, log: Callable[[str], None] = print) -> dict:
    """Collect every installed photo source into ``<cache>/photos`` and return the manifest."""
    out = cache / "photos"
    out.mkdir(parents=True, exist_ok=True)
    photos: list[dict] = []
    missing: list[str] = []
    seen_pixels: dict[str, str] = {}
    for name, package, licence, finder in SOURCES:
        n_before = len(photos)
        for f in finder():
            try:
                im = normalise(f.load())
            except Exception as exc:  # a broken file is skipped and said, not fatal
                log(f"skip {f.origin}: {type(exc).__name__}: {exc}")
                continue
            if min(im.size) < MIN_SIDE:
                continue
            arr = np.asarray(im)
            digest = hashlib.sha256(arr.tobytes() + str(arr.shape).encode()).hexdigest()
            if digest in seen_pixels:  # the same picture shipped twice
                continue
            seen_pixels[digest] = f.key
            fname = f"{f.key}.png"
            if not (out / fname).is_file():
                tmp = out / f".{fname}.{os.getpid()}.tmp"
                im.save(tmp, format="PNG")
                tmp.replace(out / fname)
            pkg = _package_of(f.origin, package)
            photos.append(asdict(Photo(
                id=f.key, file=fname, group=f.group, domain=f.domain, source=name, package=pkg,
                origin=f.origin, licence=licence,
                copyright_file=(f"/usr/share/doc/{pkg}/copyright"
                                if Path(f"/usr/share/doc/{pkg}/copyright").is_file() else None),
                width=im.size[0], height=im.size[1], sha256=digest)))
        if len(photos) == n_before:
            missing.append(name)
        log(f"{name}: {len(photos) - n_before} images")
    manifest = {"schema": MANIFEST_SCHEMA, "version": DATASET_VERSION, "max_side": MAX_SIDE,
                "min_side": MIN_SIDE, "missing_sources": missing, "photos": photos}
    tmp = out / f".manifest.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(out / "manifest.json")
    return manifest


def validate_manifest(manifest: dict) -> list[str]:
    """Problems with a manifest (empty list when it is well formed)."""
    problems = []
    if manifest.get("schema") != MANIFEST_SCHEMA:
        problems.append(f"schema is {manifest.get('schema')!r}, expected {MANIFEST_SCHEMA!r}")
    ids = set()
    for i, p in enumerate(manifest.get("photos", [])):
        absent = [k for k in MANIFEST_FIELDS if k not in p]
        if absent:
            problems.append(f"photo {i}: missing fields {absent}")
            continue
        if p["id"] in ids:
            problems.append(f"photo {i}: duplicate id {p['id']!r}")
        ids.add(p["id"])
        if p["domain"] not in ("photo", "astro"):
            problems.append(f"photo {i}: unknown domain {p['domain']!r}")
        if not p["licence"]:
            problems.append(f"photo {i}: no licence")
    return problems


def load_manifest(cache: Path) -> Optional[dict]:
    path = cache / "photos" / "manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    return manifest if manifest.get("version") == DATASET_VERSION else None


# --------------------------------------------------------------------------------------------
# a generated stand-in for CI (no packages needed)


def synthetic_photos(n: int, seed: int, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    """``n`` distinct photo-like RGB images: smooth random fields, shapes and grain.

    Not a substitute for real photos (their statistics differ); it exercises the benchmark's
    logic in quick mode and in tests.
    """
    w, h = size
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        coarse = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.uint8)
        base = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.float32)
        yy, xx = np.mgrid[0:h, 0:w]
        for _ in range(int(rng.integers(3, 7))):  # a few blobs with hard-ish edges
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(h / 10, h / 3)
            mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
            base[mask] = base[mask] * 0.4 + rng.uniform(0, 255, size=3) * 0.6
        base += rng.normal(0, 4.0, size=(h, w, 1))
        out.append(np.clip(base + 0.5, 0, 255).astype(np.uint8))
    return out


def install_packages(log: Callable[[str], None] = print) -> None:
    """apt-get install the photo packages (root, Debian only); failures are reported, not fatal."""
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *DEBIAN_PACKAGES]
    log("$ " + " ".join(cmd))
    r = subprocess.run(cmd, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if r.returncode != 0:
        log(f"apt-get failed (exit {r.returncode}); gathering what is installed")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.datasets", description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=harness.DEFAULT_CACHE)
    parser.add_argument("--install", action="store_true", help="apt-get install the photo packages first")
    args = parser.parse_args(argv)
    if args.install:
        install_packages()
    manifest = gather(args.cache)
    groups = {p["group"] for p in manifest["photos"]}
    by_domain: dict[str, int] = {}
    for p in manifest["photos"]:
        by_domain[p["domain"]] = by_domain.get(p["domain"], 0) + 1
    print(f"{len(manifest['photos'])} images in {len(groups)} groups {by_domain}; "
          f"missing sources: {manifest['missing_sources'] or 'none'}; "
          f"manifest: {args.cache / 'photos' / 'manifest.json'}")
    problems = validate_manifest(manifest)
    for p in problems:
        print("manifest problem:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
