"""The page's files (package data under ``assets/``, read once into memory: nothing is loaded
from anywhere else, no CDN, no web font) and its words (message catalogues,
``assets/messages/<lang>.json``, one per language; ``_dir`` says ``ltr`` or ``rtl``).

The HTML is rendered on the server in the chosen language -- ``{{key}}`` is replaced by the
catalogue's text, HTML-escaped -- so the page is readable and correctly oriented before any
script runs; the script takes the words it shows later from the same catalogue.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Optional

LANGUAGES = ("en", "ar")
DEFAULT_LANGUAGE = "en"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml"}
_KEY = re.compile(r"\{\{([a-z0-9_]+)\}\}")
#: Assets served under /static/ (the HTML pages are rendered, not served as files).
STATIC = ("app.js", "app.css", "exit.css", "messages/en.json", "messages/ar.json")


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


class Pages:
    """The assets and catalogues, loaded from the package once."""

    def __init__(self) -> None:
        root = resources.files(__package__).joinpath("assets")
        self._files = {name: root.joinpath(name).read_bytes() for name in (*STATIC, "index.html", "exit.html")}
        self.catalogues = {lang: json.loads(self._files[f"messages/{lang}.json"]) for lang in LANGUAGES}
        missing = {lang: set(self.catalogues[DEFAULT_LANGUAGE]) - set(c) for lang, c in self.catalogues.items()}
        if any(missing.values()):
            raise RuntimeError(f"message catalogues lack keys: {missing}")

    def static(self, name: str) -> Optional[Asset]:
        if name not in STATIC:
            return None
        suffix = name[name.rfind("."):]
        return Asset(self._files[name], _TYPES[suffix])

    def language(self, asked: Optional[str], accept: str = "") -> str:
        if asked in LANGUAGES:
            return str(asked)
        for part in accept.split(","):
            code = part.split(";")[0].strip().lower()[:2]
            if code in LANGUAGES:
                return code
        return DEFAULT_LANGUAGE

    def render(self, page: str, lang: str) -> str:
        words = self.catalogues[lang]
        text = self._files[page].decode("utf-8")

        def word(m: re.Match) -> str:
            key = m.group(1)
            if key == "lang":
                return lang
            if key == "dir":
                return str(words["_dir"])
            return html.escape(str(words[key]))

        return _KEY.sub(word, text)
