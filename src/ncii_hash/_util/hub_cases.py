"""The survivor's calls to a hub (docs/hub.md, "Survivors"), shared by ``ncii-hash submit``/
``case`` and the local app (``ncii-hash app``): open a case with a submission, check or
withdraw it with the case number and PIN. Transport rules (https, or http to this computer;
no redirects; bounded retries) are :class:`~.http.JsonClient`'s.

A submission is sent with an ``Idempotency-Key`` of 256 random bits that every retry reuses,
so a lost answer never makes two cases.
"""

from __future__ import annotations

import math
import secrets
import urllib.parse
from dataclasses import dataclass
from typing import Optional

from .http import HTTPStatusError, JsonClient

TIMEOUT = 30.0  #: seconds per attempt
SUBMIT_RETRIES = 5  #: connection errors, 5xx and 429, each resent with the same idempotency key
CASE_ACTIONS = ("status", "withdraw")
MAX_CASE_NUMBER = 64  #: characters; anything longer is not a case number


@dataclass(frozen=True)
class OpenedCase:
    case_number: str
    pin: str


def open_case(hub: str, submission: bytes, *, timeout: float = TIMEOUT) -> OpenedCase:
    """Send a submission file's bytes as they are; the hub's case number and PIN.

    Raises HTTPStatusError (the hub refused), HTTPConnectionError (after the retries; the
    hub may or may not have opened a case), or ValueError for an answer that is not a case."""
    client = JsonClient(hub, {}, timeout=timeout, retries=SUBMIT_RETRIES, backoff=1.0)
    key = secrets.token_urlsafe(32)  # 256 random bits; the same on every retry of this submission
    _, answer = client.request("POST", "cases", raw_body=submission, headers={"Idempotency-Key": key})
    case, pin = (answer.get("case_number"), answer.get("pin")) if isinstance(answer, dict) else (None, None)
    if not isinstance(case, str) or not isinstance(pin, str):
        raise ValueError("the hub's answer has no case number and PIN (is this the right address?)")
    return OpenedCase(case, pin)


def case_request(hub: str, case_number: str, pin: str, action: str, *, timeout: float = TIMEOUT) -> dict:
    """``status`` or ``withdraw`` a case; the hub's answer (a dict). Raises ValueError for a
    case number that cannot be one or an answer that is not a case, and the client's errors."""
    if action not in CASE_ACTIONS:
        raise ValueError(f"action must be one of {', '.join(CASE_ACTIONS)}")
    case = case_number.strip()
    if not case or len(case) > MAX_CASE_NUMBER:
        raise ValueError(f"{case_number!r} is not a case number (like NC-7K3M-Q9TD-2XAV)")
    client = JsonClient(hub, {}, timeout=timeout, retries=3, backoff=1.0)
    path = f"cases/{urllib.parse.quote(case, safe='')}/{action}"
    _, answer = client.request("POST", path, body={"pin": pin}, retry_statuses=(502, 503, 504))
    if not isinstance(answer, dict):
        raise ValueError("the hub's answer is not a case (is this the right address?)")
    return answer


def retry_seconds(exc: HTTPStatusError) -> Optional[int]:
    """Whole seconds to wait after a 429 (None when the hub did not say)."""
    return math.ceil(exc.retry_after) if exc.retry_after is not None else None
