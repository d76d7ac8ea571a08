"""Case numbers, PINs and partner keys: how they are made, read back and checked.

A case number is ``NC-`` + 12 characters of Crockford's base-32 alphabet (60 random bits); a
PIN is 10 characters of it (50 bits). Input is forgiving (case ignored, spaces and hyphens
dropped, ``O`` -> ``0``, ``I``/``L`` -> ``1``). PINs and partner keys are stored only as
argon2id hashes and checked with argon2's verify (constant time in the secret). For 24 hours
after a submission the PIN is also kept sealed under a key only the submitting client knows
(HMAC-SHA256 of its idempotency key), so a retry can be answered with the same PIN.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Optional

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32
CASE_PREFIX = "NC"
CASE_CHARS = 12
PIN_CHARS = 10
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_case_number() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(CASE_CHARS))
    return f"{CASE_PREFIX}-{body[0:4]}-{body[4:8]}-{body[8:12]}"


def new_pin() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(PIN_CHARS))


def _squeeze(text: str) -> str:
    return text.upper().replace(" ", "").replace("-", "")


def read_case_number(text: str) -> Optional[str]:
    """The canonical case number for forgiving input, or None when it cannot be one."""
    s = _squeeze(text)
    if s.startswith(CASE_PREFIX) and len(s) == len(CASE_PREFIX) + CASE_CHARS:
        s = s[len(CASE_PREFIX):]
    s = s.translate(_READ_AS)
    if len(s) != CASE_CHARS or any(c not in ALPHABET for c in s):
        return None
    return f"{CASE_PREFIX}-{s[0:4]}-{s[4:8]}-{s[8:12]}"


def read_pin(text: str) -> str:
    """The canonical form of a typed PIN (what was hashed when it was made)."""
    return _squeeze(text).translate(_READ_AS)


def digest_of(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class SecretCost:
    """argon2id cost for PINs and partner keys (``--pin-cost TIME,MEMORY_KIB``)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024

    @classmethod
    def parse(cls, text: str) -> "SecretCost":
        parts = text.split(",")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"--pin-cost: expected TIME,MEMORY_KIB (e.g. 3,65536), got {text!r}")
        t, m = (int(p) for p in parts)
        if t < 1 or m < 8:
            raise ValueError("--pin-cost: time must be >= 1 and memory >= 8 KiB")
        return cls(t, m)

    def hasher(self) -> PasswordHasher:
        return PasswordHasher(time_cost=self.time_cost, memory_cost=self.memory_kib, parallelism=1,
                              type=Type.ID)


class SecretHasher:
    """argon2id hashing and constant-time verification of PINs and keys."""

    def __init__(self, cost: SecretCost = SecretCost()):
        self._ph = cost.hasher()
        # Checked against when a case does not exist, so an unknown case costs the same time.
        self._decoy = self._ph.hash(new_pin())

    def hash(self, secret: str) -> str:
        return self._ph.hash(secret)

    def verify(self, stored: Optional[str], secret: str) -> bool:
        try:
            return bool(self._ph.verify(stored or self._decoy, secret)) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


# ---- the sealed PIN (idempotent retries) ------------------------------------------------------

def idempotency_digests(key: str, body: bytes) -> tuple[str, str]:
    """(digest of the key, digest of key + body): what the store keeps to recognise a retry."""
    return digest_of(key), digest_of(key.encode("utf-8") + b"\0" + body)


def _pad(key: str, nonce: bytes, size: int) -> bytes:
    seal_key = hmac.new(key.encode("utf-8"), b"ncii-hash-hub pin seal", hashlib.sha256).digest()
    return hmac.new(seal_key, nonce, hashlib.sha256).digest()[:size]


def seal_pin(pin: str, idempotency_key: str) -> str:
    nonce = secrets.token_bytes(16)
    data = pin.encode("ascii")
    sealed = bytes(a ^ b for a, b in zip(data, _pad(idempotency_key, nonce, len(data))))
    return base64.b64encode(nonce + sealed).decode("ascii")


def unseal_pin(sealed: str, idempotency_key: str) -> str:
    raw = base64.b64decode(sealed)
    nonce, data = raw[:16], raw[16:]
    return bytes(a ^ b for a, b in zip(data, _pad(idempotency_key, nonce, len(data)))).decode("ascii")


# ---- partner keys -------------------------------------------------------------------------------

def new_partner_keys() -> tuple[str, str, str]:
    """(partner id, fetch key, subscription key). The subscription key starts with the partner
    id, so a request names the one partner whose hashes are checked (no scan over partners)."""
    partner_id = secrets.token_hex(6)
    return partner_id, secrets.token_urlsafe(32), f"{partner_id}.{secrets.token_urlsafe(32)}"


def partner_id_of(subscription_key: str) -> Optional[str]:
    head, sep, _ = subscription_key.partition(".")
    if not sep or len(head) != 12 or any(c not in "0123456789abcdef" for c in head):
        return None
    return head
