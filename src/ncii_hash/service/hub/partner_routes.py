"""Partners' endpoints under /v1, as python-threatexchange's ``StopNCIIAPI`` calls them
(docs/hub.md, "Partners"): FetchHashes, SubmitFeedback, SubmitHashes."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, HTTPException

from ...bank.feed import (FEEDBACK_VALUES, STOCK_SIGNAL_TYPES, FeedPage, normalize_hash_value,
                          parse_signal_type, position_of, seq_of)
from ...errors import FeedError
from .context import HubContext
from .deps import hub, partner
from .models import (CountBody, ErrorBody, FetchHashesBody, SubmitFeedbackBody, SubmitHashesBody)
from .partners import FeedbackItem, ReportedHash
from .tokens import TOKEN_SECONDS, PageToken, TokenError, TokenExpiredError

router = APIRouter(prefix="/v1", tags=["partners"])
MAX_PAGE_SIZE = 10_000
DEFAULT_PAGE_SIZE = 800
_ERRORS: dict = {c: {"model": ErrorBody} for c in (400, 401, 410, 413, 503)}


def _signal_types(text: Optional[str]) -> tuple[str, ...]:
    if not text:
        return STOCK_SIGNAL_TYPES
    try:
        return tuple(sorted({parse_signal_type(t.strip(), "signalTypes") for t in text.split(",") if t.strip()}))
    except FeedError as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/FetchHashes", response_model=FetchHashesBody, responses=_ERRORS)
def fetch_hashes(startTimestamp: int = 0, pageSize: int = DEFAULT_PAGE_SIZE,  # noqa: N803 (StopNCII's names)
                 nextPageToken: Optional[str] = None, signalTypes: Optional[str] = None,
                 ctx: HubContext = Depends(hub), partner_id: str = Depends(partner)) -> dict:
    if not 1 <= pageSize <= MAX_PAGE_SIZE:
        raise HTTPException(400, f"pageSize must be 1..{MAX_PAGE_SIZE}")
    now = ctx.now()
    current, purged = ctx.store.feed.position()
    if nextPageToken:
        try:
            token = ctx.signer.open(nextPageToken, partner_id, now)
        except TokenExpiredError as exc:
            raise HTTPException(410, str(exc)) from None
        except (TokenError, ValueError, TypeError, IndexError):
            raise HTTPException(400, "nextPageToken is not a page token of this hub for these keys") from None
        start, end, types, after = token.start, token.end, token.signal_types, token.cursor
    else:
        start, end, types, after = seq_of(startTimestamp), current, _signal_types(signalTypes), None
        if start > current:
            raise HTTPException(400, "startTimestamp is beyond this hub's feed (a checkpoint from another hub?)")
        if start >= purged:
            # A partner asks from the checkpoint it has stored: it holds every change up to there.
            # Only this proves it -- a last page the hub served may never have arrived (a crash,
            # a dropped connection), and purging on that would leave the partner a 410.
            ctx.store.partners.stored_checkpoint(partner_id, start)
    if 0 < start < purged:
        raise HTTPException(410, "checkpoint too old: fetch from the beginning")
    page = ctx.store.feed.page(start, end, types, after, pageSize)
    if page.cursor is not None:
        next_token: Optional[str] = ctx.signer.sign(
            PageToken(partner_id, start, end, types, page.cursor, int(now) + TOKEN_SECONDS))
        position = position_of(start)
    else:
        next_token, position = None, position_of(end)
    return FeedPage(tuple(page.records), next_token, position, page.cursor is not None).to_json()


@router.post("/SubmitFeedback", response_model=CountBody, responses=_ERRORS)
def submit_feedback(body: SubmitFeedbackBody, ctx: HubContext = Depends(hub),
                    partner_id: str = Depends(partner)) -> CountBody:
    items = []
    for i, f in enumerate(body.hashFeedbacks):
        if f.feedbackValue not in FEEDBACK_VALUES:
            raise HTTPException(400, f"hashFeedbacks[{i}].feedbackValue: {f.feedbackValue!r} is not one of "
                                     f"{', '.join(FEEDBACK_VALUES)}")
        items.append(FeedbackItem(f.hashValue.strip().lower(), f.feedbackValue, tuple(f.tags)))
    return CountBody(count=ctx.store.partners.submit_feedback(partner_id, items, ctx.now()))


@router.post("/SubmitHashes", response_model=CountBody, responses=_ERRORS)
def submit_hashes(body: SubmitHashesBody, ctx: HubContext = Depends(hub),
                  partner_id: str = Depends(partner)) -> CountBody:
    items = []
    for i, r in enumerate(body.hashRecords):
        where = f"hashRecords[{i}]"
        try:
            signal_type = parse_signal_type(r.signalType, f"{where}.signalType")
            value = normalize_hash_value(signal_type, r.hashValue, f"{where}.hashValue")
        except FeedError as exc:
            raise HTTPException(400, str(exc)) from None
        feedback = r.CSPFeedbacks[0] if r.CSPFeedbacks else None
        if feedback is not None and feedback.feedbackValue not in FEEDBACK_VALUES:
            raise HTTPException(400, f"{where}.CSPFeedbacks[0].feedbackValue: {feedback.feedbackValue!r} is not one "
                                     f"of {', '.join(FEEDBACK_VALUES)}")
        items.append(ReportedHash(signal_type, value, feedback.feedbackValue if feedback else "None",
                                  tuple(feedback.tags) if feedback else ()))
    return CountBody(count=ctx.store.partners.submit_hashes(partner_id, items, ctx.now()))
