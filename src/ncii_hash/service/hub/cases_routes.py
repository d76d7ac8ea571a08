"""Survivors' endpoints: open a case, check it, withdraw it (docs/hub.md, "Survivors").

A wrong PIN and an unknown case number get the same 403. Wrong PINs earn a wait per case
(stored) and per client address (memory); attempts before the wait is over get 429 with
Retry-After and are not checked at all.
"""

from __future__ import annotations

import json
import re
from typing import Optional

from fastapi import APIRouter, Depends, Header, HTTPException, Response

from ...errors import SubmissionError
from ...submission import parse_submission
from .cases import case_hashes_of
from .context import HubContext
from .credentials import idempotency_digests, new_pin, read_case_number, read_pin, seal_pin, unseal_pin
from .deps import client_address, hub, raw_body
from .models import CaseCreated, CaseStatus, CaseWithdrawn, ErrorBody, PinBody, SubmissionBody
from .throttle import retry_after, wait_after

router = APIRouter(tags=["survivors"])
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{22,128}$")
WRONG = "wrong case number or PIN"
_ERRORS: dict = {c: {"model": ErrorBody} for c in (400, 403, 409, 413, 429, 503)}


@router.post("/cases", status_code=201, response_model=CaseCreated, responses=_ERRORS,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": SubmissionBody.model_json_schema()}}}})
def open_case(response: Response, body: bytes = Depends(raw_body), ctx: HubContext = Depends(hub),
              idempotency_key: Optional[str] = Header(None, alias="Idempotency-Key")) -> CaseCreated:
    if not idempotency_key or not IDEMPOTENCY_KEY.match(idempotency_key):
        raise HTTPException(400, "an Idempotency-Key header of 22 to 128 characters A-Z a-z 0-9 _ - is required")
    try:
        submission = parse_submission(json.loads(body))
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        reason = str(exc) if isinstance(exc, SubmissionError) else "the body is not valid JSON"
        raise HTTPException(400, f"not a valid submission: {reason}") from None
    if len(submission) == 0:
        raise HTTPException(400, "not a valid submission: it has no items")
    key_digest, body_digest = idempotency_digests(idempotency_key, body)
    now = ctx.now()
    opened = ctx.store.cases.find_retry(key_digest, body_digest, now)
    if opened is None:
        pin = new_pin()
        opened = ctx.store.cases.open_case(case_hashes_of(submission), len(submission), ctx.hasher.hash(pin),
                                           seal_pin(pin, idempotency_key), key_digest, body_digest, now)
    if opened.conflict or opened.case_number is None:
        raise HTTPException(409, "this Idempotency-Key was used for another submission; make a new key")
    if not opened.created:
        response.status_code = 200
        if opened.sealed_pin is None:  # pragma: no cover - erased only after the 24 hours checked above
            raise HTTPException(409, "this Idempotency-Key has expired; make a new key")
        pin = unseal_pin(opened.sealed_pin, idempotency_key)
    return CaseCreated(case_number=opened.case_number, pin=pin, items=opened.items, hashes=opened.hashes)


def checked_case(ctx: HubContext, case_text: str, pin: str, client: str) -> str:
    """The canonical case number when ``pin`` is its PIN; raises 400/403/429 otherwise."""
    case_number = read_case_number(case_text)
    if case_number is None:
        raise HTTPException(400, "not a case number (NC- and 12 characters, e.g. NC-7K3M-Q9TD-2XAV)")
    now = ctx.now()
    auth = ctx.store.cases.auth(case_number)
    not_before = max(ctx.clients.not_before(client), auth.not_before if auth else 0.0)
    if now < not_before:
        raise HTTPException(429, "too many wrong PINs: wait before trying again",
                            headers={"Retry-After": str(retry_after(not_before, now))})
    if not ctx.hasher.verify(auth.pin_hash if auth else None, read_pin(pin)) or auth is None:
        ctx.clients.failed(client)
        if auth is not None:
            ctx.store.cases.record_failure(case_number, lambda failures: now + wait_after(failures))
        raise HTTPException(403, WRONG)
    if auth.failures:
        ctx.store.cases.reset_failures(case_number)
    return case_number


@router.post("/cases/{case_number}/status", response_model=CaseStatus, responses=_ERRORS)
def case_status(case_number: str, body: PinBody, ctx: HubContext = Depends(hub),
                client: str = Depends(client_address)) -> CaseStatus:
    state = ctx.store.cases.state(checked_case(ctx, case_number, body.pin, client))
    if state is None:  # pragma: no cover - cases are never deleted
        raise HTTPException(403, WRONG)
    return CaseStatus(case_number=state.case_number, status=state.status, items=state.items, hashes=state.hashes,
                      feedback=state.feedback)


@router.post("/cases/{case_number}/withdraw", response_model=CaseWithdrawn, responses=_ERRORS)
def withdraw_case(case_number: str, body: PinBody, ctx: HubContext = Depends(hub),
                  client: str = Depends(client_address)) -> CaseWithdrawn:
    state = ctx.store.cases.withdraw(checked_case(ctx, case_number, body.pin, client), ctx.now())
    if state is None:  # pragma: no cover - cases are never deleted
        raise HTTPException(403, WRONG)
    return CaseWithdrawn(case_number=state.case_number, status=state.status, hashes=state.hashes)
