"""A real browser for the local app's tests: Playwright (PyPI ``playwright``) driving the system's
Chromium, passed by path (Playwright's own browser download is never used). Without Playwright
or a Chromium the tests skip with the reason; under ``CI=true`` a missing browser fails them
(``.ci/run`` installs Debian's ``chromium-headless-shell``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

import pytest

CANDIDATES = ("/usr/bin/chromium-headless-shell", "/usr/lib/chromium/chromium-headless-shell",
              "/usr/bin/chromium", "/usr/lib/chromium/chromium")


def find_chromium() -> Optional[str]:
    """$NCII_HASH_CHROMIUM, else Debian's chromium-headless-shell or chromium."""
    env = os.environ.get("NCII_HASH_CHROMIUM")
    for c in ([env] if env else []) + list(CANDIDATES) + [shutil.which("chromium") or ""]:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


def unavailable_reason() -> Optional[str]:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install 'ncii-hash[test]'"
    if find_chromium() is None:
        return ("no Chromium found (apt-get install chromium-headless-shell, or set NCII_HASH_CHROMIUM "
                "to a Chromium binary)")
    return None


def require_browser() -> None:
    """Skip (fail under CI=true) when no browser can be driven here."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and the browser tests cannot run: {reason}")
    pytest.skip(reason)


#: axe-core's WCAG 2.2 A/AA rules, the ones every page of the app and the hub must pass.
WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]},
        "resultTypes": ["violations"]}


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """One Chromium per test module (import this fixture by name into the module)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=find_chromium())
        yield b
        b.close()


class LoopbackOnly:
    """Route handler for a browser context: requests to 127.0.0.1 go on, anything else is
    aborted and remembered (a test asserts the list is empty). Also keeps every request body
    sent, so tests can look for file names in them."""

    def __init__(self) -> None:
        self.foreign: list[str] = []
        self.bodies: list[bytes] = []

    def __call__(self, route) -> None:  # type: ignore[no-untyped-def]
        from urllib.parse import urlsplit

        request = route.request
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob") or parts.hostname == "127.0.0.1":
            body = request.post_data_buffer
            if body:
                self.bodies.append(body)
            route.continue_()
        else:
            self.foreign.append(request.url)
            route.abort()
