"""Shared by the hardening tests: seeded codes, a tiny photo, the CLI in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image


RNG_SEED = 90210


def codes(n: int, seed: int = RNG_SEED) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


def photo(path: Path, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize((64, 64), Image.BILINEAR).save(path, "PNG")
    return path


def run_cli(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ncii_hash", *map(str, args)], capture_output=True,
                          env=env, timeout=300)
