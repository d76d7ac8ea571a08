"""A platform's client of a StopNCII-compatible partner API (our hub's ``/v1`` or StopNCII's
own): the key line, ``FetchHashes`` pages and ``SubmitFeedback``, in the shapes
python-threatexchange's ``StopNCIIAPI`` sends (docs/hub.md, "Partners").

Keys are the threatexchange key-file line ``fetch_key,subscription_key[,base_url]``; every call
sends ``x-functions-key`` (the endpoint's function key: StopNCII gives each endpoint its own,
our hub accepts the partner's one key everywhere) and ``Ocp-Apim-Subscription-Key``. Keys are
never printed or logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence, Union

from .._util.http import JsonClient
from ..errors import FeedError
from .feed import FEEDBACK_VALUES, STOCK_SIGNAL_TYPES, FeedPage, parse_signal_type

DEFAULT_PAGE_SIZE = 800
MAX_PAGE_SIZE = 10_000


@dataclass(frozen=True)
class FeedKeys:
    """A partner's keys (and, optionally, the feed's base URL: the key line's third field)."""

    fetch_key: str
    subscription_key: str
    base_url: Optional[str] = None
    feedback_key: Optional[str] = None  #: SubmitFeedback's own function key (StopNCII); else fetch_key

    def __repr__(self) -> str:  # keys are secrets: never in a traceback or a log
        return f"FeedKeys(base_url={self.base_url!r}, keys=<hidden>)"

    @classmethod
    def parse(cls, line: str) -> "FeedKeys":
        """``fetch_key,subscription_key[,base_url]`` (threatexchange's StopNCII credential line)."""
        parts = [p.strip() for p in line.strip().split(",")]
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ValueError("a key line is 'fetch_key,subscription_key' or 'fetch_key,subscription_key,base_url'")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 and parts[2] else None)

    @classmethod
    def read(cls, path: Union[str, "os.PathLike[str]"]) -> "FeedKeys":
        """The first non-empty, non-comment line of a key file."""
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip() and not line.lstrip().startswith("#"):
                    try:
                        return cls.parse(line)
                    except ValueError as exc:
                        raise ValueError(f"{os.fspath(path)}: {exc}") from None
        raise ValueError(f"{os.fspath(path)}: no key line (expected 'fetch_key,subscription_key[,base_url]')")

    @classmethod
    def of(cls, keys: Any) -> "FeedKeys":
        """FeedKeys from FeedKeys, a key line, or a ``(fetch_key, subscription_key)`` pair."""
        if isinstance(keys, FeedKeys):
            return keys
        if isinstance(keys, str):
            return cls.parse(keys)
        if isinstance(keys, (tuple, list)) and len(keys) in (2, 3) and all(isinstance(k, str) for k in keys):
            return cls(*keys)
        raise TypeError("keys: give FeedKeys, a 'fetch_key,subscription_key[,base_url]' line or a (fetch, "
                        "subscription) pair")


class PartnerClient:
    """Calls to one feed (``base_url`` = the hub's address + ``/v1``, or StopNCII's)."""

    def __init__(self, base_url: str, keys: FeedKeys, *, timeout: float = 60.0, retries: int = 4,
                 backoff: float = 0.2):
        self.keys = keys
        self.http = JsonClient(base_url, {"Ocp-Apim-Subscription-Key": keys.subscription_key}, timeout=timeout,
                               retries=retries, backoff=backoff)
        self.base_url = self.http.base_url

    def fetch_page(self, start: int, *, page_size: int = DEFAULT_PAGE_SIZE, token: Optional[str] = None,
                   signal_types: Sequence[str] = STOCK_SIGNAL_TYPES) -> tuple[FeedPage, list[str]]:
        """One ``FetchHashes`` page from position ``start`` (continuing ``token``), and the
        errors of the records it had to leave out."""
        params: dict[str, Any] = {"startTimestamp": int(start), "pageSize": int(page_size)}
        if token:
            params["nextPageToken"] = token
        if tuple(signal_types) != STOCK_SIGNAL_TYPES:  # the stock feed needs no parameter
            params["signalTypes"] = ",".join(signal_types)
        _, body = self.http.request("GET", "FetchHashes", params=params,
                                    headers={"x-functions-key": self.keys.fetch_key})
        return FeedPage.from_json(body, skip_bad_records=True)

    def submit_feedback(self, feedbacks: Iterable[tuple[str, str, Iterable[str]]]) -> int:
        """Post ``(hash value, feedback value, tags)`` triples as one ``SubmitFeedback``; how
        many the server accepted."""
        items = []
        for n, (value, feedback, tags) in enumerate(feedbacks):
            if feedback not in FEEDBACK_VALUES:
                raise ValueError(f"feedback {n}: {feedback!r} is not one of {', '.join(FEEDBACK_VALUES)}")
            if not isinstance(value, str) or not value:
                raise ValueError(f"feedback {n}: the hash value must be a non-empty string")
            items.append({"tags": sorted(set(tags)), "feedbackValue": feedback, "hashValue": value.lower()})
        _, body = self.http.request("POST", "SubmitFeedback", body={"count": len(items), "hashFeedbacks": items},
                                    headers={"x-functions-key": self.keys.feedback_key or self.keys.fetch_key},
                                    retry_statuses=(429, 503))
        count = body.get("count") if isinstance(body, dict) else None
        return int(count) if isinstance(count, int) else len(items)


def check_signal_types(signal_types: Iterable[str]) -> tuple[str, ...]:
    out = tuple(parse_signal_type(s, "signal_types") for s in signal_types)
    if not out:
        raise FeedError("signal_types: name at least one signal type")
    return out
