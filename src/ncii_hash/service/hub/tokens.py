"""Page tokens: a delta's continuation, signed (HMAC-SHA256 with the hub's secret), bound to
one partner and expiring after an hour. A token names everything the next page needs (the
delta's start and end, the signal types, the cursor), so the same token always serves the
same page and the hub keeps no state per fetch."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Optional

from .feed_store import Cursor

TOKEN_SECONDS = 3600


class TokenError(ValueError):
    """A token that is not ours, not this partner's, or malformed (400)."""


class TokenExpiredError(TokenError):
    """A genuine token past its hour (410)."""


@dataclass(frozen=True)
class PageToken:
    partner_id: str
    start: int
    end: int
    signal_types: tuple[str, ...]
    cursor: Cursor
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: bytes):
        self._secret = secret

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, b"ncii-hash-hub page token\0" + body, hashlib.sha256).digest()

    def sign(self, token: PageToken) -> str:
        body = json.dumps([token.partner_id, token.start, token.end, list(token.signal_types), list(token.cursor),
                           token.expires], separators=(",", ":")).encode("utf-8")
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def open(self, text: str, partner_id: str, now: float) -> PageToken:
        head, sep, mac = text.partition(".")
        try:
            body, given = _unb64(head), _unb64(mac)
        except (binascii.Error, ValueError):
            raise TokenError("nextPageToken is not a page token of this hub") from None
        if not sep or not hmac.compare_digest(given, self._mac(body)):
            raise TokenError("nextPageToken is not a page token of this hub")
        partner, start, end, types, cursor, expires = json.loads(body)
        if partner != partner_id:
            raise TokenError("nextPageToken was issued to another partner")
        if now > expires:
            raise TokenExpiredError("nextPageToken has expired: fetch again from your last checkpoint")
        return PageToken(partner, int(start), int(end), tuple(types), (int(cursor[0]), cursor[1], cursor[2]),
                         int(expires))


def parse_token(signer: TokenSigner, text: Optional[str], partner_id: str, now: float) -> Optional[PageToken]:
    return None if not text else signer.open(text, partner_id, now)
