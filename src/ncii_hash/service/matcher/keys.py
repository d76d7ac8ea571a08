"""The matcher's API keys: random bearer tokens, stored only as their SHA-256.

A token carries 256 random bits, so a fast hash is enough to make a stolen store useless for
calling the API (a slow salted hash protects guessable secrets like PINs; nothing here is
guessable). A key is checked against the store on every request, so a removed key stops
working at once in every matcher process. Names are for people; they are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Optional

from ..access import StoreAccess

TOKEN_PREFIX = "nciim_"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class ApiKeys:
    def __init__(self, access: StoreAccess):
        self.access = access

    def add(self, name: str) -> Optional[str]:
        """A new key named ``name``: the token (shown once), or None if the name is taken."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.access.write():
            if self.access.execute("SELECT 1 FROM api_keys WHERE name=?", (name,)).fetchone() is not None:
                return None
            self.access.execute("INSERT INTO api_keys (name, key_hash, created_at) VALUES (?, ?, ?)",
                                (name, token_digest(token), time.time()))
        return token

    def remove(self, name: str) -> bool:
        with self.access.write():
            return self.access.execute("DELETE FROM api_keys WHERE name=?", (name,)).rowcount > 0

    def names(self) -> list[str]:
        with self.access.read():
            return [r[0] for r in self.access.execute("SELECT name FROM api_keys ORDER BY name").fetchall()]

    def valid(self, token: Optional[str]) -> bool:
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return False
        digest = token_digest(token)
        with self.access.read():
            row = self.access.execute("SELECT key_hash FROM api_keys WHERE key_hash=?", (digest,)).fetchone()
        return row is not None and hmac.compare_digest(str(row[0]), digest)
