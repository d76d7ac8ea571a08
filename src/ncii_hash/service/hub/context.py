"""What the hub's routes share: its settings and the per-process parts built from them (the
store, the argon2 hasher, the page-token signer, the client throttle, the partner-key cache)."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from .credentials import SecretCost, SecretHasher, partner_id_of
from .store import HubStore
from .throttle import ClientThrottle
from .tokens import TokenSigner

MiB = 1024 * 1024


@dataclass(frozen=True)
class HubSettings:
    pin_cost: SecretCost = SecretCost()
    retention_days: float = 30.0
    #: Seconds since the epoch; injected by tests to move time without sleeping.
    clock: Callable[[], float] = time.time
    max_submission_bytes: int = 16 * MiB
    max_partner_bytes: int = 4 * MiB
    #: How often the server purges withdrawn values past retention and erases expired sealed PINs.
    maintenance_seconds: float = 600.0

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * 86400.0


class PartnerKeys:
    """Partner keys checked with argon2 once per process, then recognised by their SHA-256
    (revocation is re-read from the store on every request: another process may revoke)."""

    def __init__(self, store: HubStore, hasher: SecretHasher):
        self._store = store
        self._hasher = hasher
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def partner_for(self, fetch_key: str, subscription_key: str) -> Optional[str]:
        digest = hashlib.sha256(f"{fetch_key}\0{subscription_key}".encode("utf-8", "surrogatepass")).hexdigest()
        with self._lock:
            partner_id = self._known.get(digest)
        if partner_id is not None:
            partner = self._store.partners.get(partner_id)
            if partner is not None and not partner.revoked:
                return partner_id
            with self._lock:
                self._known.pop(digest, None)
            return None
        partner_id = partner_id_of(subscription_key)
        partner = self._store.partners.get(partner_id) if partner_id else None
        if partner is None or partner.revoked:
            return None
        if not (self._hasher.verify(partner.fetch_key_hash, fetch_key)
                and self._hasher.verify(partner.subscription_key_hash, subscription_key)):
            return None
        with self._lock:
            self._known[digest] = partner.partner_id
        return partner.partner_id


class HubContext:
    def __init__(self, store: HubStore, settings: HubSettings):
        self.store = store
        self.settings = settings
        self.hasher = SecretHasher(settings.pin_cost)
        self.signer = TokenSigner(store.token_secret())
        self.clients = ClientThrottle(settings.clock)
        self.keys = PartnerKeys(store, self.hasher)

    def now(self) -> float:
        return float(self.settings.clock())

    def maintain(self) -> None:
        """Erase sealed PINs past their 24 hours; purge withdrawn values past retention."""
        now = self.now()
        self.store.cases.erase_expired_seals(now)
        self.store.feed.purge(now, self.settings.retention_seconds)
