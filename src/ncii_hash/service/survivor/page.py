"""The hub's survivor page (``/survivor``): the local app's page, flow and words, with the
hashing moved into the browser.

It is the app's own ``index.html``, ``app.js``, ``app.css`` and message catalogues (read from
:mod:`ncii_hash.service.app`'s package data through its :class:`~ncii_hash.service.app.pages.Pages`,
never copied), plus files of this package: ``pdq.js`` and the WebAssembly modules (the PDQ
core), ``md5.js`` (a video's MD5, in chunks), and ``survivor.js``, which answers the app
page's ``/api/...`` calls inside the browser -- hashing with the module, building the submission, sending it to this hub's
``/cases`` API -- so the same script drives both. A few words differ (``assets/messages``: the
page runs in a browser, not on "this computer"); they are laid over the app's catalogues.

Every script and the style sheet carry Subresource Integrity (SHA-384 of the bytes served);
the modules are fetched with their SHA-256 as ``integrity``. Nothing is loaded from anywhere
else. See docs/wasm.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
from importlib import resources

from ..app.pages import LANGUAGES, Asset, Pages

PAGE_PATH = "/survivor"
STATIC_PREFIX = "/survivor/static/"
EXIT_PATH = "/exit"
#: Pictures above this many pixels are refused before they are decoded (memory of a phone).
MAX_PIXELS = 50_000_000
#: Files above this size are refused before they are read.
MAX_FILE_BYTES = 100 * 1024 * 1024
OWN = ("pdq.js", "md5.js", "survivor.js", "pdq-simd.wasm", "pdq.wasm")
FROM_APP = ("app.js", "app.css", "exit.css")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".json": "application/json", ".wasm": "application/wasm"}
#: Security headers of every answer of the page's routes. 'wasm-unsafe-eval' lets the page
#: compile WebAssembly and nothing else (no eval of text); img-src data: is for thumbnails;
#: media-src blob: lets a chosen video play into a canvas.
CSP = ("default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; "
       "media-src blob:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "Cache-Control": "no-cache",
}


def sri(body: bytes, algorithm: str = "sha384") -> str:
    return f"{algorithm}-" + base64.b64encode(hashlib.new(algorithm, body).digest()).decode("ascii")


class SurvivorPage:
    """The page's files, loaded once; :meth:`render` gives the HTML in a language."""

    def __init__(self) -> None:
        self._app = Pages()
        own = resources.files(__package__).joinpath("assets")
        files = {name: own.joinpath(name).read_bytes() for name in OWN}
        for name in FROM_APP:
            asset = self._app.static(name)
            if asset is None:  # pragma: no cover - the app's package data is incomplete
                raise RuntimeError(f"the app's {name} is missing")
            files[name] = asset.body
        for lang in LANGUAGES:
            words = {**self._app.catalogues[lang], **json.loads(own.joinpath(f"messages/{lang}.json").read_bytes())}
            self._app.catalogues[lang] = words  # the app's renderer then uses the page's words
            files[f"messages/{lang}.json"] = json.dumps(words, ensure_ascii=False).encode("utf-8")
        self._files = files
        self.integrity = {name: sri(body) for name, body in files.items()}
        self.module_integrity = {name: sri(files[name], "sha256") for name in ("pdq-simd.wasm", "pdq.wasm")}

    def static(self, name: str) -> Asset | None:
        body = self._files.get(name)
        if body is None:
            return None
        return Asset(body, _TYPES[name[name.rfind("."):]])

    def language(self, asked: str | None, accept: str = "") -> str:
        return self._app.language(asked, accept)

    def render(self, lang: str) -> str:
        page = self._app.render("index.html", lang)
        css = f'<link rel="stylesheet" href="{STATIC_PREFIX}app.css" integrity="{self.integrity["app.css"]}">'
        config = json.dumps(self.module_integrity).replace('"', "&quot;")
        scripts = (
            f'<script src="{STATIC_PREFIX}pdq.js" integrity="{self.integrity["pdq.js"]}" defer></script>\n'
            f'<script src="{STATIC_PREFIX}md5.js" integrity="{self.integrity["md5.js"]}" defer></script>\n'
            f'<script src="{STATIC_PREFIX}survivor.js" integrity="{self.integrity["survivor.js"]}" '
            f'data-base="{STATIC_PREFIX}" data-integrity="{config}" data-max-pixels="{MAX_PIXELS}" '
            f'data-max-file-bytes="{MAX_FILE_BYTES}" defer></script>\n'
            f'<script src="{STATIC_PREFIX}app.js" integrity="{self.integrity["app.js"]}" defer></script>')
        return _replace_all(page, [
            ('<link rel="stylesheet" href="/static/app.css">', css),
            ('<script src="/static/app.js" defer></script>', scripts),
            ('<form method="get" action="/" class="lang">', f'<form method="get" action="{PAGE_PATH}" class="lang">'),
        ])

    def render_exit(self) -> str:
        return _replace_all(self._app.render("exit.html", "en"), [
            ('href="/static/exit.css"', f'href="{STATIC_PREFIX}exit.css" integrity="{self.integrity["exit.css"]}"'),
        ])


def _replace_all(text: str, pairs: list) -> str:
    """Each ``old`` must occur exactly once: a changed app page fails loudly, not silently."""
    for old, new in pairs:
        if text.count(old) != 1:
            raise RuntimeError(f"the app's page changed: {old!r} is not there exactly once")
        text = text.replace(old, new)
    return text
