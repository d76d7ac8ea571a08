"""The StopNCII feed model: round trips, the stock client's own parser as the oracle, and the
malformed records a partner or a hub can send."""

from __future__ import annotations

import numpy as np
import pytest

from ncii_hash.bank import feed
from ncii_hash.errors import FeedError

PDQ = "f" * 16 + "0" * 48


def _record(**over):
    base = {"lastModtimestamp": 1700000000, "signalType": "ImagePDQ", "hashValue": PDQ.upper(),
            "hashStatus": "Active", "caseNumbers": {"NC-AAAA-BBBB-CCCC": "Active", "NC-DDDD-EEEE-FFFF": "Withdrawn"},
            "CSPFeedbacks": [{"feedbackValue": "Blocked", "tags": ["b", "a"], "source": "p1"}]}
    base.update(over)
    return base


def test_record_round_trip_normalises_and_keeps_every_field():
    r = feed.HashRecord.from_json(_record())
    assert r.hash_value == PDQ and r.active and r.active_cases() == ["NC-AAAA-BBBB-CCCC"]
    assert r.withdrawn_cases() == ["NC-DDDD-EEEE-FFFF"]
    again = feed.HashRecord.from_json(r.to_json())
    assert again == r and r.feedbacks[0].tags == ("a", "b")


def test_stock_client_parses_what_we_write():
    api = pytest.importorskip("threatexchange.exchanges.clients.stopncii.api")
    import dacite
    import enum

    page = feed.FeedPage((feed.HashRecord.from_json(_record()),), "tok", feed.position_of(7), True).to_json()
    parsed = dacite.from_dict(api.FetchHashesResponse, {**page, "hashRecords": []},
                              config=dacite.Config(cast=[enum.Enum, set]))
    assert parsed.nextSetTimestamp == feed.FEED_EPOCH + 7 and parsed.hasMoreRecords
    rec = dacite.from_dict(api.StopNCIIHashRecord, page["hashRecords"][0], config=dacite.Config(cast=[enum.Enum, set]))
    assert rec.hashStatus == api.StopNCIICaseStatus.Active and rec.hashValue == PDQ
    assert rec.caseNumbers["NC-DDDD-EEEE-FFFF"] == api.StopNCIICaseStatus.Withdrawn
    assert rec.CSPFeedbacks[0].feedbackValue == api.StopNCIICSPFeedbackValue.Blocked


@pytest.mark.parametrize("text,expect", [("ImagePDQ", "ImagePDQ"), ("StopNCIISignalType.ImagePDQ", "ImagePDQ"),
                                         ("VideoMD5", "VideoMD5"), ("NciiVideoPDQ", "NciiVideoPDQ")])
def test_signal_types_including_the_stock_clients_enum_spelling(text, expect):
    assert feed.parse_signal_type(text) == expect


@pytest.mark.parametrize("over,field", [
    ({"signalType": "Text"}, "signalType"), ({"signalType": 3}, "signalType"),
    ({"hashValue": "abc"}, "hashValue"), ({"hashValue": "g" * 64}, "hashValue"),
    ({"hashStatus": "Gone"}, "hashStatus"), ({"caseNumbers": {"x": "Nope"}}, "caseNumbers"),
    ({"lastModtimestamp": "yesterday"}, "lastModtimestamp"), ({"lastModtimestamp": True}, "lastModtimestamp"),
    ({"CSPFeedbacks": [{"feedbackValue": "Great"}]}, "feedbackValue"),
    ({"CSPFeedbacks": [{"feedbackValue": "Blocked", "tags": "x"}]}, "tags"),
    ({"signalType": "VideoMD5", "hashValue": "0" * 31}, "hashValue"),
])
def test_malformed_records_name_the_field(over, field):
    with pytest.raises(FeedError, match=field):
        feed.HashRecord.from_json(_record(**over))


def test_empty_case_list_is_an_empty_mapping():
    assert feed.HashRecord.from_json(_record(caseNumbers=[])).case_numbers == {}


def test_page_parsing_skips_or_refuses_bad_records():
    good = _record()
    page = {"count": 2, "nextPageToken": None, "nextSetTimestamp": feed.FEED_EPOCH + 3, "hasMoreRecords": False,
            "hashRecords": [good, _record(hashValue="zz")]}
    with pytest.raises(FeedError):
        feed.FeedPage.from_json(page)
    parsed, errors = feed.FeedPage.from_json(page, skip_bad_records=True)
    assert len(parsed.records) == 1 and len(errors) == 1 and "hashRecords[1]" in errors[0]
    with pytest.raises(FeedError, match="nextPageToken"):
        feed.FeedPage.from_json({**page, "hasMoreRecords": True, "hashRecords": []})


def test_positions():
    assert feed.seq_of(10) == 0 and feed.seq_of(feed.FEED_EPOCH) == 0  # the stock client's start
    assert feed.seq_of(feed.position_of(42)) == 42


def test_video_pdq_values_round_trip_in_canonical_order():
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (5, 32), dtype=np.uint8)
    quals = [90, 50, 100, 70, 60]
    v = feed.video_pdq_value(frames, quals)
    assert v == feed.video_pdq_value(frames[::-1], quals[::-1])
    codes, q = feed.parse_video_pdq_value(v)
    assert sorted(map(bytes, codes)) == sorted(map(bytes, frames)) and sorted(q.tolist()) == sorted(quals)
    with pytest.raises(FeedError):
        feed.parse_video_pdq_value("101:" + "0" * 64)
