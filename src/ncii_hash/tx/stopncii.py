"""``NciiStopNCIIExchange``: pytx's StopNCII exchange, with withdrawals honoured, for the pytx
CLI and HMA. It reads StopNCII's partner API (or our hub's ``/v1``, docs/hub.md) through the
bank layer's feed model and client (``ncii_hash.bank.feed``, ``ncii_hash.bank.partner``).

What differs from pytx's ``StopNCIISignalExchangeAPI`` (1.2.x):

* **Withdrawals.** A record is the current state of one hash. When its ``hashStatus`` is
  ``Withdrawn`` or ``Deleted``, or every case it lists is, the update is ``None``: the hash
  leaves the fetched state (pytx's CLI store, HMA's exchange data) and so the next index.
  (pytx 1.2.17 compares ``hashValue`` instead of ``hashStatus`` with those statuses, so it
  keeps withdrawn hashes.)
* **Case numbers** of the active cases are kept in the metadata (never in logs or ``str``).
* **Feedback**: ``report_opinion`` posts ``SubmitFeedback`` (Blocked / NotBlocked /
  PendingReview with the opinion's tags).
* **Signal types**: ``ImagePDQ`` hashes are filed under our PDQ signal types
  (``NciiPdqSignal`` ``pdq`` in HMA, ``NciiPdqNamedSignal`` ``ncii_pdq`` in the pytx CLI), so
  they reach :class:`~.index.NciiPdqIndex`; ``VideoMD5`` under ``video_md5``.
* **Checkpoints** keep the page token too, so an interrupted fetch resumes inside its delta.

Credentials are pytx's ``StopNCIICredentials`` (``TX_STOPNCII_KEYS`` / ``~/.tx_stopncii_keys``:
``fetch_key,subscription_key[,base_url]``); StopNCII gives ``SubmitFeedback`` its own
function key, read from ``TX_STOPNCII_FEEDBACK_KEY`` (the fetch key is used without it, as our
hub accepts). Logs carry counts only: no hashes, case numbers or keys.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Type

from threatexchange.exchanges import auth
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.clients.stopncii.api import StopNCIIAPI
from threatexchange.exchanges.collab_config import CollaborationConfigBase
from threatexchange.exchanges.impl.stop_ncii_api import StopNCIICredentials
from threatexchange.exchanges.signal_exchange_api import SignalExchangeAPIWithSimpleUpdates
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.signal_base import SignalType

from .._util.http import HTTPStatusError
from ..bank.feed import FEED_EPOCH, GONE_STATUSES, SIGNAL_PDQ, SIGNAL_VIDEO_MD5, Feedback, HashRecord
from ..bank.partner import DEFAULT_PAGE_SIZE, FeedKeys, PartnerClient
from ..errors import FeedError
from .index import NciiPdqIndex

log = logging.getLogger(__name__)

FEEDBACK_KEY_ENV = "TX_STOPNCII_FEEDBACK_KEY"
#: A checkpoint older than this is stale (the fetch starts over), as pytx's StopNCII one.
STALE_AFTER_SECONDS = 30 * 24 * 3600
PDQ_KEY = "pdq"  #: the key's signal name of ImagePDQ records (the stock exchange's too)
_KEY_OF = {SIGNAL_PDQ: PDQ_KEY, SIGNAL_VIDEO_MD5: VideoMD5Signal.get_name()}
_FEEDBACK_OF = {
    state.SignalOpinionCategory.POSITIVE_CLASS: "Blocked",
    state.SignalOpinionCategory.NEGATIVE_CLASS: "NotBlocked",
    state.SignalOpinionCategory.INVESTIGATION_SEED: "PendingReview",
}

UpdateKey = Tuple[str, str]


@dataclass
class NciiStopNCIICheckpoint(state.FetchCheckpointBase):
    """Where the next fetch resumes: the feed position (``nextSetTimestamp``) and, inside a
    delta, the page token. Plain fields: HMA stores checkpoints as JSON."""

    position: int = StopNCIIAPI.DEFAULT_START_TIME
    page_token: Optional[str] = None
    last_fetch_time: int = 0

    def is_stale(self) -> bool:
        return time.time() - self.last_fetch_time > STALE_AFTER_SECONDS

    def get_progress_timestamp(self) -> Optional[int]:
        """StopNCII's positions are Unix times; our hub's (``FEED_EPOCH`` + sequence) are not."""
        return self.position if self.position < FEED_EPOCH else None


@dataclass
class NciiStopNCIISignalMetadata(state.FetchedSignalMetadata):
    """One fetched hash: its active cases (case number -> status), partners' feedback and
    the record's last change."""

    case_numbers: Dict[str, str] = field(default_factory=dict)
    feedbacks: List[Feedback] = field(default_factory=list)
    last_modified: int = 0

    def get_as_opinions(self) -> Sequence[state.SignalOpinion]:
        opinions = [state.SignalOpinion(False, _category_of(f.value), set(f.tags)) for f in self.feedbacks]
        # every StopNCII record is a survivor's submission: something to look at
        opinions.append(state.SignalOpinion(False, state.SignalOpinionCategory.INVESTIGATION_SEED, set()))
        return opinions

    def __str__(self) -> str:  # shown by `threatexchange match`: no case numbers
        votes = sum(1 if f.value == "Blocked" else -1 if f.value == "NotBlocked" else 0 for f in self.feedbacks)
        cases = len(self.case_numbers)
        return f"{self.get_as_aggregate_opinion().category.name} {votes:+d} {cases} case{'s' * (cases != 1)}"


def _category_of(feedback_value: str) -> state.SignalOpinionCategory:
    if feedback_value == "Blocked":
        return state.SignalOpinionCategory.POSITIVE_CLASS
    if feedback_value == "NotBlocked":
        return state.SignalOpinionCategory.NEGATIVE_CLASS
    return state.SignalOpinionCategory.INVESTIGATION_SEED


class FeedUpdates:
    """Our translation of the StopNCII feed model into pytx fetch updates."""

    @staticmethod
    def of_record(record: HashRecord) -> Optional[Tuple[UpdateKey, Optional[NciiStopNCIISignalMetadata]]]:
        """``((signal name, hash), metadata)``; metadata None when the hash is withdrawn;
        None for signal types pytx has no name for."""
        name = _KEY_OF.get(record.signal_type)
        if name is None:
            return None
        key = (name, record.hash_value)
        active = {c: s for c, s in record.case_numbers.items() if s not in GONE_STATUSES}
        if not record.active or (record.case_numbers and not active):
            return key, None
        return key, NciiStopNCIISignalMetadata(active, list(record.feedbacks), int(record.last_modified))

    @classmethod
    def of_records(cls, records: Sequence[HashRecord]) -> Dict[UpdateKey, Optional[NciiStopNCIISignalMetadata]]:
        updates: Dict[UpdateKey, Optional[NciiStopNCIISignalMetadata]] = {}
        for record in records:  # a later record of the same hash replaces an earlier one
            update = cls.of_record(record)
            if update is not None:
                updates[update[0]] = update[1]
        return updates

    @staticmethod
    def targets(name: str, signal_types: Sequence[Type[SignalType]]) -> List[Type[SignalType]]:
        """The signal types a key's name is filed under: PDQ goes to ours (index class
        :class:`NciiPdqIndex`), anything else by name."""
        if name == PDQ_KEY:
            return [st for st in signal_types if issubclass(st.get_index_cls(), NciiPdqIndex)]
        return [st for st in signal_types if st.get_name() == name]


class NciiStopNCIIExchange(
    auth.SignalExchangeWithAuth[CollaborationConfigBase, StopNCIICredentials],
    SignalExchangeAPIWithSimpleUpdates[CollaborationConfigBase, NciiStopNCIICheckpoint, NciiStopNCIISignalMetadata],
):
    """StopNCII (or an ncii_hash hub) as a pytx/HMA exchange that honours withdrawals."""

    def __init__(self, collab: CollaborationConfigBase, client: PartnerClient, *,
                 page_size: int = DEFAULT_PAGE_SIZE) -> None:
        super().__init__()
        self.collab = collab
        self.client = client
        self.page_size = page_size

    @classmethod
    def get_name(cls) -> str:
        return "ncii_stop_ncii"

    @staticmethod
    def get_config_cls() -> Type[CollaborationConfigBase]:
        return CollaborationConfigBase

    @staticmethod
    def get_checkpoint_cls() -> Type[NciiStopNCIICheckpoint]:
        return NciiStopNCIICheckpoint

    @staticmethod
    def get_record_cls() -> Type[NciiStopNCIISignalMetadata]:
        return NciiStopNCIISignalMetadata

    @staticmethod
    def get_credential_cls() -> Type[StopNCIICredentials]:
        return StopNCIICredentials

    @classmethod
    def for_collab(cls, collab: CollaborationConfigBase,
                   credentials: Optional[StopNCIICredentials] = None) -> "NciiStopNCIIExchange":
        creds = credentials or StopNCIICredentials.get(cls)
        keys = FeedKeys(creds.fetch_function_key, creds.subscription_key, creds.base_url_override,
                        feedback_key=os.environ.get(FEEDBACK_KEY_ENV) or None)
        return cls(collab, PartnerClient(creds.base_url_override or StopNCIIAPI.BASE_URL, keys))

    # ---- fetching ---------------------------------------------------------------------
    def fetch_iter(
        self, _supported_signal_types: Sequence[Type[SignalType]], checkpoint: Optional[NciiStopNCIICheckpoint],
    ) -> Iterator[state.FetchDelta[UpdateKey, NciiStopNCIISignalMetadata, NciiStopNCIICheckpoint]]:
        position = checkpoint.position if checkpoint is not None else StopNCIIAPI.DEFAULT_START_TIME
        token = checkpoint.page_token if checkpoint is not None else None
        while True:
            try:
                page, errors = self.client.fetch_page(position, page_size=self.page_size, token=token)
            except HTTPStatusError as exc:
                if token and exc.status in (400, 410):  # the token expired: restart the delta
                    log.info("StopNCII page token refused (%d); restarting the delta", exc.status)
                    token = None
                    continue
                raise
            if page.has_more and page.next_page_token == token:
                raise FeedError(f"{self.client.base_url}: the feed answered the same page token twice; stopping")
            if errors:
                log.warning("StopNCII page: skipped %d malformed records", len(errors))
            position, token = page.next_position, (page.next_page_token if page.has_more else None)
            yield state.FetchDelta(FeedUpdates.of_records(page.records),
                                   NciiStopNCIICheckpoint(position, token, int(time.time())))
            if not page.has_more:
                return

    @classmethod
    def naive_convert_to_signal_type(
        cls, signal_types: Sequence[Type[SignalType]], collab: CollaborationConfigBase,
        fetched: Mapping[UpdateKey, Optional[NciiStopNCIISignalMetadata]],
    ) -> Dict[Type[SignalType], Dict[str, NciiStopNCIISignalMetadata]]:
        out: Dict[Type[SignalType], Dict[str, NciiStopNCIISignalMetadata]] = {}
        invalid = 0
        for (name, value), metadata in fetched.items():
            if metadata is None:
                continue
            for st in FeedUpdates.targets(name, signal_types):
                try:
                    st.validate_signal_str(value)
                except ValueError:
                    invalid += 1
                    continue
                out.setdefault(st, {})[value] = metadata
        if invalid:
            log.warning("StopNCII: %d fetched signals were not valid for their signal type", invalid)
        return out

    # ---- feedback ---------------------------------------------------------------------
    def report_opinion(self, s_type: Type[SignalType], signal: str, opinion: state.SignalOpinion) -> None:
        """Post the opinion as StopNCII feedback: positive -> Blocked, negative -> NotBlocked,
        investigation seed -> PendingReview, with the opinion's tags."""
        if not (issubclass(s_type, PdqSignal) or issubclass(s_type, VideoMD5Signal)):
            raise NotImplementedError(f"StopNCII takes feedback on PDQ and video MD5 hashes, not {s_type.get_name()}")
        value = s_type.validate_signal_str(signal)
        self.client.submit_feedback([(value, _FEEDBACK_OF[opinion.category], sorted(opinion.tags))])
