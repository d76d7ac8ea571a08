"""The partner feed against a live hub with python-threatexchange's stock ``StopNCIIAPI``,
unmodified: every record through several pages, then only the delta after a checkpoint, a
withdrawal seen as ``Withdrawn``, feedback counted in the survivor's status, SubmitHashes kept
apart (docs/hub.md, "Partners")."""

from __future__ import annotations

import httpx
import pytest

from hub_server import hub, hub_store, open_case, partner_headers, stock_client, submission_body  # noqa: F401

stopncii = pytest.importorskip("threatexchange.exchanges.clients.stopncii.api")


def fetch_all(api, start: int = 10, page_size: int = 800):
    """Follow a delta to its end the way fetch_hashes_iter does (with a page size): pages and checkpoint."""
    pages, token = [], ""
    while True:
        page = api.fetch_hashes(start_timestamp=start, page_size=page_size, next_page=token)
        pages.append(page)
        if not page.hasMoreRecords:
            return pages, page.nextSetTimestamp
        assert page.nextSetTimestamp == max(start, 10**12) or start <= 10**12
        token = page.nextPageToken


def records(pages) -> dict:
    return {(r.signalType.value, r.hashValue): r for p in pages for r in p.hashRecords}


def test_stock_client_pages_deltas_withdrawals_feedback(hub):
    api = stock_client(hub.add_partner("platform-a"))
    cases = [open_case(hub.url, submission_body(seed, images=3, videos=1))[0].json() for seed in range(4)]
    # Every record through several pages (3 images + 1 video MD5 per case = 16 records, pages of 5).
    pages, checkpoint = fetch_all(api, page_size=5)
    assert len(pages) == 4 and [p.count for p in pages] == [5, 5, 5, 1]
    seen = records(pages)
    assert len(seen) == 16 and all(r.hashStatus.value == "Active" for r in seen.values())
    assert {c["case_number"] for c in cases} == {n for r in seen.values() for n in r.caseNumbers}
    assert {t for t, _ in seen} == {"ImagePDQ", "VideoMD5"}  # NciiVideoPDQ only on request
    assert all(p.nextSetTimestamp == 10**12 for p in pages[:-1]) and checkpoint == 10**12 + 4
    # The iterator the client ships with walks the same feed.
    assert set(records(list(api.fetch_hashes_iter()))) == set(seen)

    # A delta after the checkpoint: one new case, one withdrawal.
    new = open_case(hub.url, submission_body(99, images=2))[0].json()
    gone = cases[0]
    r = httpx.post(f"{hub.url}/cases/{gone['case_number']}/withdraw", json={"pin": gone["pin"]})
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"
    delta, checkpoint2 = fetch_all(api, start=checkpoint, page_size=2)
    got = records(delta)
    assert checkpoint2 == checkpoint + 2
    assert {n for r in got.values() for n in r.caseNumbers} == {new["case_number"], gone["case_number"]}
    withdrawn = [r for r in got.values() if gone["case_number"] in r.caseNumbers]
    assert len(withdrawn) == 4 and all(r.hashStatus.value == "Withdrawn" for r in withdrawn)
    assert sum(1 for r in got.values() if new["case_number"] in r.caseNumbers) == 2
    # Nothing after the last checkpoint: an empty last page.
    empty, checkpoint3 = fetch_all(api, start=checkpoint2)
    assert checkpoint3 == checkpoint2 and sum(p.count for p in empty) == 0

    # Feedback: the stock client's submit_feedback; the survivor's status counts it.
    target = cases[1]
    target_hashes = [r for r in seen.values() if target["case_number"] in r.caseNumbers]
    api.submit_feedback(target_hashes[0].signalType, target_hashes[0].hashValue,
                        stopncii.StopNCIICSPFeedbackValue.Blocked, {"reviewed"})
    api.submit_feedback(target_hashes[1].signalType, target_hashes[1].hashValue,
                        stopncii.StopNCIICSPFeedbackValue.PendingReview)
    # A newer feedback of the same partner on the same hash replaces the older one.
    api.submit_feedback(target_hashes[1].signalType, target_hashes[1].hashValue,
                        stopncii.StopNCIICSPFeedbackValue.NotBlocked)
    status = httpx.post(f"{hub.url}/cases/{target['case_number']}/status", json={"pin": target["pin"]}).json()
    assert status["feedback"] == {"Blocked": 1, "NotBlocked": 1}
    assert status["status"] == "active" and status["items"] == 4 and status["hashes"] == 5
    # ... and the feed carries it (source = the partner's name).
    again = records(fetch_all(api, page_size=100)[0])
    fb = again[(target_hashes[0].signalType.value, target_hashes[0].hashValue)].CSPFeedbacks
    assert [(f.feedbackValue.value, f.tags, f.source) for f in fb] == [("Blocked", {"reviewed"}, "platform-a")]

    # SubmitHashes (the client sends str(enum) as signalType): accepted, kept apart from the feed.
    api.submit_hash(stopncii.StopNCIISignalType.ImagePDQ, "12" * 32)
    after = records(fetch_all(api, page_size=100)[0])
    assert ("ImagePDQ", "12" * 32) not in after


def test_video_pdq_only_when_asked(hub):
    keys = hub.add_partner("platform-v")
    open_case(hub.url, submission_body(5, images=1, videos=2))
    plain = httpx.get(f"{hub.api_url}/FetchHashes", headers=partner_headers(keys)).json()
    assert sorted(r["signalType"] for r in plain["hashRecords"]) == ["ImagePDQ", "VideoMD5", "VideoMD5"]
    asked = httpx.get(f"{hub.api_url}/FetchHashes", params={"signalTypes": "ImagePDQ,VideoMD5,NciiVideoPDQ"},
                      headers=partner_headers(keys)).json()
    vpdq = [r for r in asked["hashRecords"] if r["signalType"] == "NciiVideoPDQ"]
    assert len(vpdq) == 2
    for r in vpdq:
        frames = r["hashValue"].split(";")
        assert len(frames) == 3 and frames == sorted(frames) and all(f.split(":")[0] in {"70", "80", "90"} for f in frames)
