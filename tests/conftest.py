"""Shared fixtures: where the conformance data lives.

The repository carries a small subset (tests/data/pdq). The full set is looked up in
$NCII_HASH_CONFORMANCE, then ../shared/conformance next to the checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import video_helpers

HERE = Path(__file__).resolve().parent
SUBSET_PDQ = HERE / "data" / "pdq"


def full_conformance_root() -> Path | None:
    env = os.environ.get("NCII_HASH_CONFORMANCE")
    candidates = [Path(env)] if env else []
    candidates.append(HERE.parent.parent / "shared" / "conformance")
    for c in candidates:
        if (c / "pdq" / "expected" / "cpp-reference-pdq.csv").is_file():
            return c
    return None


FULL_ROOT = full_conformance_root()
needs_full_set = pytest.mark.skipif(
    FULL_ROOT is None,
    reason="full conformance set not found (set NCII_HASH_CONFORMANCE or place it at ../shared/conformance)",
)


@pytest.fixture(scope="session")
def subset_pdq() -> Path:
    return SUBSET_PDQ


@pytest.fixture(scope="session")
def full_pdq() -> Path:
    if FULL_ROOT is None:
        pytest.skip("full conformance set not found (set NCII_HASH_CONFORMANCE or place it at ../shared/conformance)")
    return FULL_ROOT / "pdq"


@pytest.fixture(params=["scalar", "avx2", "avx512"])
def simd(request):
    """Run a test at every SIMD level this CPU has; restore the detected level after."""
    from ncii_hash import _core

    level = request.param
    order = ["scalar", "avx2", "avx512"]
    if order.index(level) > order.index(_core.detected_simd_level()):
        pytest.skip(f"CPU has no {level}")
    _core.set_simd_cap(level)
    assert _core.simd_level() == level
    yield level
    _core.set_simd_cap("avx512")


@pytest.fixture(scope="session")
def vpdq_root() -> Path:
    if video_helpers.VPDQ_ROOT is None:
        pytest.skip(video_helpers.SKIP_FULL)
    return video_helpers.VPDQ_ROOT


@pytest.fixture(scope="module")
def cv2():
    return pytest.importorskip("cv2", reason="OpenCV missing: pip install 'ncii-hash[video]'")
