"""HashBank.sync against scripted feeds: the records our hub never sends (malformed values,
unknown signal types, no case numbers, StopNCII's own quirks), expired tokens, a crash
mid-page, videos, the key line and SubmitFeedback's shape. The real hub is in
tests/test_sync_hub.py and tests/test_hub_e2e.py; this scripted feed is a stand-in only for
answers a correct hub never gives."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ncii_hash import HashBank
from ncii_hash._util import http
from ncii_hash.bank import FeedKeys, send_feedback
from ncii_hash.bank import cases as bank_cases
from ncii_hash.bank.feed import FEED_EPOCH, video_pdq_value
from ncii_hash.errors import FeedError

RNG = np.random.default_rng(16)
KEYS = "fetch-key-1,sub-key-1"


def codes(n: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, 32), dtype=np.uint8)


def record(value: str, cases: dict, *, signal: str = "ImagePDQ", status: str = "") -> dict:
    if not status:
        status = "Active" if any(s == "Active" for s in cases.values()) or not cases else "Withdrawn"
    return {"lastModtimestamp": 1700000000, "signalType": signal, "hashValue": value, "hashStatus": status,
            "caseNumbers": cases, "CSPFeedbacks": []}


def page(records: list, *, token=None, position: int = FEED_EPOCH) -> dict:
    return {"count": len(records), "nextPageToken": token, "nextSetTimestamp": position,
            "hasMoreRecords": token is not None, "hashRecords": records}


class ScriptedFeed:
    """Answers FetchHashes from ``answers[(startTimestamp, token)]`` and records every request."""

    def __init__(self):
        self.answers: dict = {}
        self.requests: list = []
        self.feedback: list = []
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _send(self, status, obj, headers=()):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                feed.requests.append((url.path, q, self.headers))
                key = (int(q["startTimestamp"]), q.get("nextPageToken"))
                answer = feed.answers.get(key, (200, page([], position=max(key[0], FEED_EPOCH))))
                self._send(*answer) if isinstance(answer, tuple) else self._send(200, answer)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                feed.feedback.append((self.path, body, self.headers))
                self._send(200, {"count": body["count"]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feed():
    f = ScriptedFeed()
    yield f
    f.close()


@pytest.fixture(autouse=True)
def waits(monkeypatch):
    """Retries wait through http.pause: recorded here, never slept."""
    seen: list = []
    monkeypatch.setattr(http, "pause", seen.append)
    return seen


@pytest.fixture
def bank(tmp_path):
    with HashBank(tmp_path / "bank.db", snapshot=False) as b:
        yield b


def test_pages_become_cases_named_by_case_number_and_match(feed, bank):
    h = codes(3)
    feed.answers[(10, None)] = page([record(h[0].tobytes().hex(), {"NC-AAAA-BBBB-CCCC": "Active"}),
                                     record(h[1].tobytes().hex(), {"NC-AAAA-BBBB-CCCC": "Active",
                                                                   "NC-DDDD-EEEE-FFFF": "Active"})],
                                    token="t1", position=10)
    feed.answers[(10, "t1")] = page([record(h[2].tobytes().hex(), {"NC-DDDD-EEEE-FFFF": "Active"})],
                                    position=FEED_EPOCH + 7)
    report = bank.sync(feed.url, KEYS)
    assert (report.pages, report.records, report.cases_added, report.hashes_added) == (2, 3, 2, 4)
    assert report.complete and report.checkpoint == FEED_EPOCH + 7 and report.skipped == 0
    assert bank.case("NC-AAAA-BBBB-CCCC").hashes == 2 and bank.case("NC-DDDD-EEEE-FFFF").hashes == 2
    assert {m.case_id for m in bank.match(h[1:2])} == {"NC-AAAA-BBBB-CCCC", "NC-DDDD-EEEE-FFFF"}
    bank.verify()
    path, params, headers = feed.requests[0]
    assert path == "/v1/FetchHashes" and params == {"startTimestamp": "10", "pageSize": "800"}
    assert headers["x-functions-key"] == "fetch-key-1" and headers["Ocp-Apim-Subscription-Key"] == "sub-key-1"
    assert feed.requests[1][1]["nextPageToken"] == "t1"
    # The next sync starts at the stored checkpoint and gets only the delta (here: nothing).
    again = bank.sync(feed.url, KEYS)
    assert feed.requests[-1][1]["startTimestamp"] == str(FEED_EPOCH + 7)
    assert (again.records, again.hashes_added, again.checkpoint) == (0, 0, FEED_EPOCH + 7)


def test_a_page_sent_twice_adds_nothing_twice(feed, bank):
    h = codes(2)
    recs = [record(x.tobytes().hex(), {"NC-1": "Active"}) for x in h]
    feed.answers[(10, None)] = page(recs, position=FEED_EPOCH + 2)
    feed.answers[(FEED_EPOCH + 2, None)] = page(recs, position=FEED_EPOCH + 2)  # a repeat is harmless
    bank.sync(feed.url, KEYS)
    second = bank.sync(feed.url, KEYS)
    assert second.records == 2 and second.hashes_added == 0 and bank.case("NC-1").hashes == 2
    assert len(bank) == 2


def test_withdrawn_cases_go_at_once_and_are_never_re_added(feed, bank):
    h = codes(2)
    a, b = h[0].tobytes().hex(), h[1].tobytes().hex()
    feed.answers[(10, None)] = page([record(a, {"NC-1": "Active"}), record(b, {"NC-2": "Active"})],
                                    position=FEED_EPOCH + 2)
    bank.sync(feed.url, KEYS)
    # NC-1 withdrawn; NC-3 withdrawn before this bank ever saw it; then a stale page lists both as active.
    feed.answers[(FEED_EPOCH + 2, None)] = page([record(a, {"NC-1": "Withdrawn"}),
                                                 record(codes(1)[0].tobytes().hex(), {"NC-3": "Withdrawn"})],
                                                token="t", position=FEED_EPOCH + 2)
    feed.answers[(FEED_EPOCH + 2, "t")] = page([record(a, {"NC-1": "Active"}), record(b, {"NC-3": "Active"})],
                                               position=FEED_EPOCH + 5)
    report = bank.sync(feed.url, KEYS)
    assert report.cases_withdrawn == 2 and report.hashes_added == 0
    assert bank.case("NC-1").status == "withdrawn" and bank.case("NC-1").hashes == 0
    assert bank.case("NC-3").status == "withdrawn" and bank.case("NC-3").hashes == 0
    assert [m.case_id for m in bank.match(h)] == ["NC-2"]
    bank.verify()


def test_a_withdrawn_hash_status_withdraws_every_case_it_lists(feed, bank):
    h = codes(1)[0].tobytes().hex()
    feed.answers[(10, None)] = page([record(h, {"NC-1": "Active"})], position=FEED_EPOCH + 1)
    bank.sync(feed.url, KEYS)
    feed.answers[(FEED_EPOCH + 1, None)] = page([record(h, {"NC-1": "Active"}, status="Deleted")],
                                                position=FEED_EPOCH + 2)
    assert bank.sync(feed.url, KEYS).cases_withdrawn == 1
    assert bank.case("NC-1").status == "withdrawn"


def test_records_without_case_numbers_are_banked_per_hash_and_withdrawn_by_hash(feed, bank):
    h = codes(2)
    feed.answers[(10, None)] = page([record(x.tobytes().hex(), {}) for x in h], position=FEED_EPOCH + 1)
    assert bank.sync(feed.url, KEYS).cases_added == 2
    feed.answers[(FEED_EPOCH + 1, None)] = page([record(h[0].tobytes().hex(), [], status="Withdrawn")],
                                                position=FEED_EPOCH + 2)
    assert bank.sync(feed.url, KEYS).cases_withdrawn == 1
    assert len(bank.match(h[:1], 0)) == 0 and len(bank.match(h[1:], 0)) == 1


def test_bad_records_are_skipped_and_counted_the_rest_goes_on(feed, bank):
    good = codes(1)[0].tobytes().hex()
    feed.answers[(10, None)] = page([
        record("ab" * 10, {"NC-1": "Active"}),  # too short
        record(good, {"NC-1": "Active"}, signal="VideoTMK"),  # unknown to us
        record(good, {"bad case/number": "Active"}),  # not a case id
        record("0:" + "ab" * 32, {"NC-1": "Active"}, signal="NciiVideoPDQ"),  # not requested
        {"signalType": "ImagePDQ"},  # nothing else
        record(good, {"NC-1": "Active"}),
    ], position=FEED_EPOCH + 1)
    report = bank.sync(feed.url, KEYS)
    assert report.records == 6 and report.skipped == 5 and report.hashes_added == 1
    assert any("hashRecords[0].hashValue" in r for r in report.skip_reasons)
    assert any("VideoTMK" in r for r in report.skip_reasons)
    assert any("not a valid case id" in r for r in report.skip_reasons)
    assert any("not requested" in r for r in report.skip_reasons)


def test_videos_are_banked_as_items_with_their_md5(feed, bank):
    frames = codes(4)
    value = video_pdq_value(frames, [90, 80, 70, 60])
    md5 = "0123456789abcdef0123456789abcdef"
    feed.answers[(10, None)] = page([record(md5, {"NC-V": "Active"}, signal="VideoMD5"),
                                     record(value, {"NC-V": "Active"}, signal="NciiVideoPDQ")],
                                    position=FEED_EPOCH + 1)
    report = bank.sync(feed.url, KEYS, signal_types=("ImagePDQ", "VideoMD5", "NciiVideoPDQ"))
    assert report.hashes_added == 4 and report.skipped == 0
    assert feed.requests[0][1]["signalTypes"] == "ImagePDQ,VideoMD5,NciiVideoPDQ"
    found = bank.match_video((frames, np.array([90, 80, 70, 60]), md5))
    assert [(m.case_id, m.md5_equal) for m in found] == [("NC-V", True)]
    # Sent again (a replay): nothing new.
    bank.sync(feed.url, KEYS, signal_types=("ImagePDQ", "VideoMD5", "NciiVideoPDQ"), restart=True)
    assert bank.case("NC-V").hashes == 4


def test_a_crash_mid_page_applies_nothing_and_the_next_sync_resumes(feed, bank, monkeypatch):
    h = codes(3)
    feed.answers[(10, None)] = page([record(h[0].tobytes().hex(), {"NC-1": "Active"})], token="t1", position=10)
    feed.answers[(10, "t1")] = page([record(h[1].tobytes().hex(), {"NC-2": "Active"}),
                                     record(h[2].tobytes().hex(), {"NC-3": "Active"})], position=FEED_EPOCH + 3)
    real = bank_cases.add_hashes

    def crash_on_nc3(db, cid, *a, **k):
        if cid == "NC-3":
            raise OSError("disk gone")
        return real(db, cid, *a, **k)

    monkeypatch.setattr(bank_cases, "add_hashes", crash_on_nc3)
    with pytest.raises(OSError):
        bank.sync(feed.url, KEYS)
    with pytest.raises(KeyError):
        bank.case("NC-2")  # the second page's transaction rolled back as a whole
    assert bank.case("NC-1").hashes == 1
    monkeypatch.setattr(bank_cases, "add_hashes", real)
    n = len(feed.requests)
    report = bank.sync(feed.url, KEYS)
    assert feed.requests[n][1].get("nextPageToken") == "t1"  # resumed inside the delta
    assert (report.pages, report.hashes_added, report.checkpoint) == (1, 2, FEED_EPOCH + 3)
    bank.verify()


def test_an_expired_token_restarts_the_delta_from_its_checkpoint(feed, bank, waits):
    h = codes(2)
    feed.answers[(10, None)] = page([record(h[0].tobytes().hex(), {"NC-1": "Active"})], token="old", position=10)
    feed.answers[(10, "old")] = (503, {"detail": "down"})
    with pytest.raises(FeedError, match="503"):
        bank.sync(feed.url, KEYS, timeout=5)
    assert waits == [0.2, 0.4, 0.8, 1.6]  # retried with backoff, then explained
    feed.answers[(10, "old")] = (410, {"detail": "page token expired"})
    feed.answers[(10, None)] = page([record(h[1].tobytes().hex(), {"NC-2": "Active"})], position=FEED_EPOCH + 2)
    report = bank.sync(feed.url, KEYS)
    assert report.checkpoint == FEED_EPOCH + 2 and bank.case("NC-2").hashes == 1


def test_refused_keys_and_old_checkpoints_are_explained(feed, bank):
    feed.answers[(10, None)] = (401, {"detail": "unknown partner keys"})
    with pytest.raises(FeedError, match="refused the keys"):
        bank.sync(feed.url, KEYS)
    feed.answers[(10, None)] = (410, {"detail": "checkpoint too old: fetch from the beginning"})
    with pytest.raises(FeedError, match="restart"):
        bank.sync(feed.url, KEYS)


def test_key_lines_and_feedback_in_the_clients_shape(feed, tmp_path):
    k = FeedKeys.parse(f"a,b,{feed.url}\n")
    assert (k.fetch_key, k.subscription_key, k.base_url) == ("a", "b", feed.url)
    assert "a" not in repr(k).replace("base_url", "")
    f = tmp_path / "k"
    f.write_text("# partner keys\n\nx,y\n")
    assert FeedKeys.read(f) == FeedKeys("x", "y")
    for bad in ("only-one", "a,b,c,d", ",b"):
        with pytest.raises(ValueError):
            FeedKeys.parse(bad)
    n = send_feedback(None, k, [("AB" * 32, "Blocked", ["reviewed", "nudity"])], feedback_key="fb-key")
    path, body, headers = feed.feedback[0]
    assert n == 1 and path == "/v1/SubmitFeedback"
    assert body == {"count": 1, "hashFeedbacks": [{"tags": ["nudity", "reviewed"], "feedbackValue": "Blocked",
                                                   "hashValue": "ab" * 32}]}
    assert headers["x-functions-key"] == "fb-key" and headers["Ocp-Apim-Subscription-Key"] == "b"
    with pytest.raises(ValueError):
        send_feedback(None, k, [("ab" * 32, "Great", [])])


def test_plain_http_to_another_host_is_refused_before_connecting(bank):
    with pytest.raises(ValueError, match="https"):
        bank.sync("http://192.0.2.1/v1", KEYS)
