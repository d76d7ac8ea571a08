"""Optional heavy dependencies (OpenCV, PyAV, FAISS, Ray, pyarrow) behind extras.

``optional_import`` is the one way the library imports them: a missing package raises an
ImportError that names the extra to install; ``try_import`` is for code that has a fallback.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Optional


def optional_import(module: str, *, extra: str, purpose: str, package: Optional[str] = None) -> ModuleType:
    """Import ``module`` or raise ImportError: "<purpose> need(s) <package>: pip install 'ncii-hash[<extra>]'"."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or module
        raise ImportError(f"{purpose} needs {name}: pip install 'ncii-hash[{extra}]'") from exc


def try_import(module: str) -> Optional[ModuleType]:
    """The module, or None when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
