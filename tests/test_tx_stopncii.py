"""NciiStopNCIIExchange over recorded StopNCII feed pages served on 127.0.0.1: fetched state,
withdrawals (a record turns Withdrawn: the hash leaves the state and the index built from it),
case numbers in the metadata, checkpoints (JSON, as HMA stores them; tokens inside a delta),
feedback, bad records."""

from __future__ import annotations

import json
import pickle

import pytest

pytest.importorskip("threatexchange", reason="the pytx extension needs threatexchange (pip install "
                    "'ncii-hash[threatexchange]')")

from threatexchange.exchanges import fetch_state  # noqa: E402
from threatexchange.exchanges.collab_config import CollaborationConfigBase  # noqa: E402
from threatexchange.exchanges.impl.stop_ncii_api import StopNCIICredentials  # noqa: E402
from threatexchange.signal_type.md5 import VideoMD5Signal  # noqa: E402
from threatexchange.signal_type.pdq.signal import PdqSignal  # noqa: E402
from threatexchange.utils import dataclass_json  # noqa: E402
from tx_helpers import T0, FeedServer, page, record  # noqa: E402

from ncii_hash.bank.partner import FeedKeys, PartnerClient  # noqa: E402
from ncii_hash.tx import (NciiPdqIndex, NciiPdqNamedSignal, NciiPdqSignal, NciiStopNCIICheckpoint,  # noqa: E402
                          NciiStopNCIIExchange, NciiStopNCIISignalMetadata)

H1, H2, H3 = ("f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
              "e64cc9d91c623882f8d1f1d9a398e78c9f199b3bd83924f2b7e11e0bf861b064",
              "6227401f601ff4ccafcc9fad4b0d95d371a2eb7265a3285234d228ca94deeb2d")
MD5 = "0123456789abcdef0123456789abcdef"
COLLAB = CollaborationConfigBase("NCII_FEED", NciiStopNCIIExchange.get_name(), True)


def first_delta() -> dict:
    return {
        (10, None): page([
            record(H1, cases={"CASE-1": "Active"}),
            record(H2, cases={"CASE-2": "Active", "CASE-3": "Withdrawn"}),
            record(MD5, signal="VideoMD5", cases={"CASE-4": "Active"}),
        ], 10, token="t1"),
        (10, "t1"): page([
            record(H3.upper(), cases={"CASE-5": "Received"},
                   feedbacks=[{"feedbackValue": "Blocked", "tags": ["ncii"], "source": "PartnerA"}]),
            record("not-a-hash", cases={"CASE-6": "Active"}),  # malformed: skipped, the rest goes on
            record("ab" * 32, signal="URL"),  # a type our model does not take: skipped
        ], T0 + 100),
    }


def second_delta() -> dict:
    return {
        (T0 + 100, None): page([
            record(H1, "Withdrawn", {"CASE-1": "Withdrawn"}, modified=T0 + 150),
            # hashStatus still Active, but every case it lists is withdrawn: gone too
            record(H2, "Active", {"CASE-2": "Withdrawn", "CASE-3": "Withdrawn"}, modified=T0 + 160),
        ], T0 + 200),
        (T0 + 200, None): page([], T0 + 200),
    }


def exchange(server: FeedServer, **keys: str) -> NciiStopNCIIExchange:
    return NciiStopNCIIExchange(COLLAB, PartnerClient(server.url, FeedKeys("fetch-key", "sub-key", **keys)))


def fetch(ex: NciiStopNCIIExchange, checkpoint=None, state=None):
    state = {} if state is None else state
    deltas = 0
    for delta in ex.fetch_iter([NciiPdqSignal], checkpoint):
        NciiStopNCIIExchange.naive_fetch_merge(state, delta.updates)
        checkpoint = delta.checkpoint
        deltas += 1
    return state, checkpoint, deltas


def index_of(state: dict, signal_type=NciiPdqSignal) -> NciiPdqIndex:
    by_type = NciiStopNCIIExchange.naive_convert_to_signal_type([signal_type, VideoMD5Signal], COLLAB, state)
    return signal_type.get_index_cls().build(by_type.get(signal_type, {}).items())


def test_fetch_then_a_withdrawal_removes_the_hash() -> None:
    with FeedServer({**first_delta(), **second_delta()}) as server:
        ex = exchange(server)
        state, cp, pages = fetch(ex)
        assert pages == 2 and cp.position == T0 + 100 and cp.page_token is None
        assert set(state) == {("pdq", H1), ("pdq", H2), ("pdq", H3), ("video_md5", MD5)}
        meta = state[("pdq", H2)]
        assert type(meta) is NciiStopNCIISignalMetadata
        assert meta.case_numbers == {"CASE-2": "Active"}  # the withdrawn case is not kept
        assert state[("pdq", H3)].case_numbers == {"CASE-5": "Received"}
        index = index_of(state)
        assert [m.similarity_info.distance for m in index.query(H1)] == [0]
        assert index.query(H1)[0].metadata.case_numbers == {"CASE-1": "Active"}

        state, cp, _ = fetch(ex, cp, state)  # resumes at the checkpoint: the second delta
        assert cp.position == T0 + 200
        assert set(state) == {("pdq", H3), ("video_md5", MD5)}  # H1 and H2 left the fetched state
        index = index_of(state)
        assert index.query(H1) == [] and index.query(H2) == []
        assert [m.similarity_info.distance for m in index.query(H3)] == [0]
        assert all(h["x-functions-key"] == "fetch-key" and h["ocp-apim-subscription-key"] == "sub-key"
                   for h in server.fetch_headers)


def test_pdq_hashes_are_filed_under_our_signal_types_only() -> None:
    with FeedServer(first_delta()) as server:
        state, _, _ = fetch(exchange(server))
    for ours in (NciiPdqSignal, NciiPdqNamedSignal):
        by_type = NciiStopNCIIExchange.naive_convert_to_signal_type([ours, PdqSignal, VideoMD5Signal], COLLAB, state)
        assert set(by_type[ours]) == {H1, H2, H3}
        assert PdqSignal not in by_type  # pytx's own pdq (its approximate index) gets nothing
        assert set(by_type[VideoMD5Signal]) == {MD5}


def test_metadata_opinions_and_text_carry_no_case_numbers() -> None:
    with FeedServer(first_delta()) as server:
        state, _, _ = fetch(exchange(server))
    meta = state[("pdq", H3)]
    agg = meta.get_as_aggregate_opinion()
    assert agg.category == fetch_state.AggregateSignalOpinionCategory.POSITIVE_CLASS and agg.tags == {"ncii"}
    text = str(meta)
    assert text.startswith("POSITIVE_CLASS +1") and "CASE" not in text
    assert str(state[("pdq", H1)]).startswith("INVESTIGATION_SEED")
    again = pickle.loads(pickle.dumps(meta))  # HMA pickles the fetched metadata
    assert again == meta


def test_checkpoint_is_json_like_hma_stores_it_and_resumes_inside_a_delta() -> None:
    with FeedServer(first_delta()) as server:
        ex = exchange(server)
        it = ex.fetch_iter([NciiPdqSignal], None)
        first = next(it)  # interrupted after the first page
        cp = first.checkpoint
        assert (cp.position, cp.page_token) == (10, "t1") and not cp.is_stale()
        assert cp.get_progress_timestamp() == 10
        as_json = json.dumps(dataclass_json.dataclass_dump_dict(cp))
        loaded = dataclass_json.dataclass_load_dict(json.loads(as_json), NciiStopNCIIExchange.get_checkpoint_cls())
        assert loaded == cp
        state, cp2, pages = fetch(ex, loaded)  # continues with the token: only the second page
        assert pages == 1 and set(state) == {("pdq", H3)}
    assert NciiStopNCIICheckpoint(10**12 + 5).get_progress_timestamp() is None  # our hub's positions
    assert NciiStopNCIICheckpoint(10, last_fetch_time=0).is_stale()


def test_an_expired_page_token_restarts_the_delta() -> None:
    pages = {**first_delta(), (10, "expired"): 410}
    with FeedServer(pages) as server:
        state, cp, n = fetch(exchange(server), NciiStopNCIICheckpoint(10, "expired", T0))
    assert n == 2 and set(state) == {("pdq", H1), ("pdq", H2), ("pdq", H3), ("video_md5", MD5)}


def test_a_feed_error_is_raised_not_swallowed() -> None:
    with FeedServer({}) as server:
        with pytest.raises(Exception, match="400"):
            fetch(exchange(server))


def test_report_opinion_sends_feedback(monkeypatch: pytest.MonkeyPatch) -> None:
    with FeedServer({}) as server:
        ex = exchange(server, feedback_key="feedback-key")
        ex.report_opinion(NciiPdqSignal, H1, fetch_state.SignalOpinion(
            True, fetch_state.SignalOpinionCategory.POSITIVE_CLASS, {"reviewed", "ncii"}))
        ex.report_opinion(VideoMD5Signal, MD5, fetch_state.SignalOpinion(
            True, fetch_state.SignalOpinionCategory.NEGATIVE_CLASS, set()))
        with pytest.raises(ValueError):
            ex.report_opinion(NciiPdqSignal, "nope", fetch_state.SignalOpinion(
                True, fetch_state.SignalOpinionCategory.POSITIVE_CLASS, set()))
        from threatexchange.signal_type.raw_text import RawTextSignal
        with pytest.raises(NotImplementedError):
            ex.report_opinion(RawTextSignal, "text", fetch_state.SignalOpinion(
                True, fetch_state.SignalOpinionCategory.POSITIVE_CLASS, set()))
    assert [b for _, b in server.feedback] == [
        {"count": 1, "hashFeedbacks": [{"tags": ["ncii", "reviewed"], "feedbackValue": "Blocked", "hashValue": H1}]},
        {"count": 1, "hashFeedbacks": [{"tags": [], "feedbackValue": "NotBlocked", "hashValue": MD5}]},
    ]
    assert all(h["x-functions-key"] == "feedback-key" for h, _ in server.feedback)


def test_for_collab_reads_pytx_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    with FeedServer(first_delta()) as server:
        monkeypatch.setenv("TX_STOPNCII_KEYS", f"fk,sk,{server.url}")
        monkeypatch.setenv("TX_STOPNCII_FEEDBACK_KEY", "fbk")
        ex = NciiStopNCIIExchange.for_collab(COLLAB)
        assert ex.client.keys.feedback_key == "fbk" and "fk" not in repr(ex.client.keys)
        state, _, _ = fetch(ex)
        assert ("pdq", H1) in state
        ex = NciiStopNCIIExchange.for_collab(COLLAB, StopNCIICredentials("fk2", "sk2", server.url))
        fetch(ex)
        assert server.fetch_headers[-1]["x-functions-key"] == "fk2"
