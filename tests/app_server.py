"""A REAL local app for tests: ``python -m ncii_hash app --no-browser --port 0`` in a subprocess
(with ``TMPDIR`` pointed at a folder of the test's choosing, so a test can see that nothing is
spooled to disk), its printed address read back, stopped at the end. Also the media the tests
send: seeded pictures in JPEG, PNG, WebP and HEIC, and the repository's small video."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

_LINE = re.compile(r"^ncii-hash app: open (http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]+))$")
STARTUP_SECONDS = 60
VIDEO = Path(__file__).parent / "data" / "vpdq" / "test-padded-dimensions.mp4"


class AppServer:
    def __init__(self, *, folder: Optional[Path] = None, tmpdir: Optional[Path] = None,
                 extra_args: Sequence[str] = (), browser: str = ""):
        self.browser = browser  #: $BROWSER for the app (webbrowser's command); "" = --no-browser
        self.folder = folder
        self.tmpdir = tmpdir
        self.extra_args = tuple(extra_args)
        self.proc: Optional[subprocess.Popen] = None
        self.url = self.base = self.token = ""
        self.port = 0
        self._out = Path(tempfile.mkstemp(prefix="app-out-")[1])
        self._err = Path(tempfile.mkstemp(prefix="app-err-")[1])

    def start(self) -> "AppServer":
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.tmpdir is not None:
            env["TMPDIR"] = str(self.tmpdir)
        if self.browser:
            env["BROWSER"] = self.browser
        opening = [] if self.browser else ["--no-browser"]
        args = [sys.executable, "-m", "ncii_hash", "app", *opening, "--port", "0", *self.extra_args]
        if self.folder is not None:
            args.append(str(self.folder))
        with open(self._out, "w") as out, open(self._err, "w") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                if "\n" in self._out.read_text() or self.proc.poll() is not None:
                    done.set()
                done.wait(0.02)

        threading.Thread(target=poll, daemon=True).start()
        if not done.wait(STARTUP_SECONDS):
            self.stop()
            raise RuntimeError(f"the app printed no address in {STARTUP_SECONDS} s: {self.output()}")
        lines = self._out.read_text().splitlines()
        m = _LINE.match(lines[0]) if lines else None
        if m is None:
            self.stop()
            raise RuntimeError(f"the app did not start: {self.output()}")
        self.url, self.port, self.token = m.group(1), int(m.group(2)), m.group(3)
        self.base = f"http://127.0.0.1:{self.port}"
        return self

    @property
    def origin(self) -> str:
        return self.base

    @property
    def cookie_name(self) -> str:
        return f"ncii_hash_app_{self.port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)

    def output(self) -> str:
        return self._out.read_text() + self._err.read_text()

    def close(self) -> None:
        self.stop()
        self._out.unlink(missing_ok=True)
        self._err.unlink(missing_ok=True)

    def __enter__(self) -> "AppServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def login(app: AppServer):
    """An httpx client holding the app's session cookie (got by the token exchange)."""
    import httpx

    client = httpx.Client(base_url=app.base, timeout=120)
    r = client.get(f"/?token={urllib.parse.quote(app.token)}", follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def post_headers(app: AppServer, **extra: str) -> dict:
    return {"Origin": app.origin, "X-Ncii-App": "1", **extra}


# ---- media ---------------------------------------------------------------------------------------
def picture(seed: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """A seeded picture with structure at several scales (so PDQ quality is high)."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.integers(0, 256, (h // 40 + 1, w // 40 + 1, 3), dtype=np.uint8)
    big = np.kron(coarse, np.ones((40, 40, 1), dtype=np.uint8))[:h, :w]
    noise = rng.integers(0, 48, (h, w, 3), dtype=np.uint8)
    return np.clip(big.astype(np.int16) + noise - 24, 0, 255).astype(np.uint8)


def encode(pixels: np.ndarray, fmt: str, **options) -> bytes:
    from PIL import Image

    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt, **options)
    return out.getvalue()


def media_files(folder: Path) -> dict[str, Path]:
    """JPEG, PNG, WebP and HEIC pictures and an MP4 video, written to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "jpeg": ("beach-holiday.jpg", encode(picture(1), "JPEG", quality=90)),
        "png": ("IMG_0002.png", encode(picture(2), "PNG")),
        "webp": ("secret name.webp", encode(picture(3), "WEBP", quality=90)),
        "heic": ("IMG_0004.heic", encode(picture(4), "HEIF", quality=90)),
        "video": ("clip-0005.mp4", VIDEO.read_bytes()),
    }
    out = {}
    for kind, (name, data) in files.items():
        (folder / name).write_bytes(data)
        out[kind] = folder / name
    return out


#: The survivor's example photos (docs/survivor.md), for the centre-window opt-in.
EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples" / "survivor").glob("*.jpg"))
#: A picture size whose centre box (ncii_hash.image.variants.window_box, 70%) needs Python's
#: round-half-even on exact halves: 215 * 0.7 = 150.5 -> 150 and (215 - 150) * 0.5 = 32.5 -> 32
#: (Math.round: 151 and 33), 155 * 0.7 = 108.5 -> 108.
TIE_SIZE = (215, 155)


def flat_centre(seed: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """A textured picture whose central 80% is one flat grey: the whole picture hashes well, its
    centre window (70%) has quality 0 and is never shared."""
    px = picture(seed, size)
    w, h = size
    px[h // 10: h - h // 10, w // 10: w - w // 10] = 128
    return px


# ---- submissions ---------------------------------------------------------------------------------
def cli_submission(files, folder: Path) -> dict:
    """``ncii-hash hash FILES -o`` run as a user would; the submission it wrote."""
    import json

    out = folder / "cli-submission.json"
    done = subprocess.run([sys.executable, "-m", "ncii_hash", "hash", *map(str, files), "-o", str(out), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def canonical(sub: dict) -> list:
    """A submission's items with their shuffled order (and videos' frame order) taken out."""
    import json

    items = []
    for item in sub["items"]:
        if item["kind"] == "video":
            item = {**item, "frames": sorted(item["frames"], key=lambda f: f["pdq"])}
        items.append(json.dumps(item, sort_keys=True))
    return sorted(items)
