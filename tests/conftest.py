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


# ---- PostgreSQL: one throwaway cluster per session, one fresh database per test -------------
# (tests/pg_cluster.py). Without PostgreSQL the tests that need it skip -- except under CI=true,
# where a missing PostgreSQL is a failure (.ci/run installs it).
import subprocess  # noqa: E402

import pg_cluster  # noqa: E402


def _no_postgres(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture(scope="session")
def pg_server(request):
    """The session's running :class:`pg_cluster.PgCluster`: ``create_database()`` ->
    ``(name, url)``, ``restart()``, ``stop()``/``start()``, ``terminate(name)``."""
    reason = pg_cluster.unavailable_reason()
    if reason is not None:
        _no_postgres(reason)
    try:
        cluster = pg_cluster.PgCluster()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        _no_postgres(f"the test cluster did not start: {exc}")
    request.addfinalizer(cluster.close)
    return cluster


@pytest.fixture
def pg_database(pg_server):
    """A fresh empty database in the session cluster: ``(name, url)``; dropped afterwards
    (its connections are cut). The server is started again first if a test left it stopped."""
    name, url = pg_server.create_database()
    yield name, url
    if not pg_server.running:
        pg_server.start()
    pg_server.drop_database(name)


@pytest.fixture
def pg_url(pg_database) -> str:
    """The ``postgresql://`` URL of a fresh empty database (with its password)."""
    return pg_database[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> str:
    """Where a bank lives, once per store: a fresh SQLite file path or PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "bank.db")
    return request.getfixturevalue("pg_url")
