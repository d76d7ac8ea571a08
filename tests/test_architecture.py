"""The package layout holds (docs/architecture.md): import-linter's contracts (pyproject.toml),
no private name imported across packages, no module grown past the size where it should be
split, a public API that matches the README, and `import ncii_hash` importing no heavy
optional dependency."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ncii_hash

SRC = Path(ncii_hash.__file__).resolve().parent  # the package as installed (editable or not)
ROOT = Path(__file__).resolve().parent.parent  # the repository: pyproject.toml and its contracts
#: A module longer than this is split by concept (a part the class owns, a module of its own).
MAX_MODULE_LINES = 420
#: Internal packages whose underscore names may be imported anywhere in the library.
SHARED_INTERNALS = {"_core", "_util"}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def _package_of(module: Path) -> str:
    rel = module.relative_to(SRC).parts
    return rel[0] if len(rel) > 1 else ""  # "" = a top-level module (hashes.py, errors.py ...)


def _resolve(module: Path, node: ast.ImportFrom) -> list[str]:
    """The dotted path below ncii_hash that an import refers to, as parts."""
    base = list(module.relative_to(SRC).with_suffix("").parts)
    if node.level == 0:
        parts = (node.module or "").split(".")
        return parts[1:] if parts[0] == "ncii_hash" else []
    here = base[:-1] if module.name != "__init__.py" else base[:-1]
    up = here[: len(here) - (node.level - 1)] if node.level > 1 else here
    return up + ((node.module or "").split(".") if node.module else [])


def test_import_linter_contracts_are_kept():
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install '.[test]')")
    out = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_private_name_is_imported_across_packages():
    offences = []
    for module in _modules():
        tree = ast.parse(module.read_text(), str(module))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _resolve(module, node)
            if not target or target[0] in SHARED_INTERNALS:
                continue
            target_pkg = target[0] if (SRC / target[0]).is_dir() else ""
            if target_pkg == _package_of(module):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    offences.append(f"{module.relative_to(SRC)}:{node.lineno} imports {alias.name} from "
                                    f"{'.'.join(target)}")
    assert not offences, "\n".join(offences)


def test_modules_stay_small():
    long = {str(m.relative_to(SRC)): n for m in _modules() if (n := len(m.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these by concept: {long}"


def test_public_api_names_exist_and_read_well():
    missing = [n for n in ncii_hash.__all__ if n not in ("ShardedIndex", "BackfillReport", "backfill")
               and not hasattr(ncii_hash, n)]
    assert not missing
    for name in ("HashBank", "BankError", "BankMatch", "HashIndex", "pdq_hash", "read_submission",
                 "write_submission", "make_submission", "verify_features", "NciiHashError"):
        assert name in ncii_hash.__all__, name
    assert "verify" not in ncii_hash.__all__  # ambiguous at the top level: verify_features


def test_every_error_derives_from_the_base():
    for name in ("ImageError", "VideoError", "BankError", "SubmissionError", "FeatureError",
                 "ShardUnavailableError", "IndexFileError"):
        assert issubclass(getattr(ncii_hash, name), ncii_hash.NciiHashError), name
    for name in ("ImageError", "VideoError", "BankError", "SubmissionError", "FeatureError"):
        assert issubclass(getattr(ncii_hash, name), ValueError), name  # value errors stay ValueErrors
    err = ncii_hash.ImageError("photo.jpg", "truncated")
    assert (err.source, err.reason, str(err)) == ("photo.jpg", "truncated", "photo.jpg: truncated")


def test_version_is_the_installed_distribution_version():
    from importlib.metadata import version

    assert ncii_hash.__version__ == version("ncii-hash")
    assert f'version = "{ncii_hash.__version__}"' in (ROOT / "pyproject.toml").read_text()


def test_importing_the_library_imports_no_optional_dependency_and_no_network_code():
    code = ("import sys, ncii_hash; heavy = {'ray', 'cv2', 'av', 'faiss', 'pyarrow', 'fastapi', 'uvicorn', "
            "'psycopg', 'threatexchange', 'tqdm', 'ssl', 'http.client', 'urllib.request', 'argon2'}; print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
