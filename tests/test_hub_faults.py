"""Faults at the hub, on loopback, bounded, each run stopping by itself (docs/hub.md).

* **Load** -- 50 survivors open 5,000 cases at once (some re-sent with their idempotency key,
  some withdrawn) while 5 partners pull the feed continuously with the stock ``threatexchange``
  ``StopNCIIAPI`` client: every case number returned is in a final full fetch with exactly its
  hashes, no submission made two cases, and each partner's incremental view (deltas applied in
  order, checkpoint = ``nextSetTimestamp``) equals the full fetch.
* **Crash** -- the hub is killed with SIGKILL 20 times, at seeded moments (after a seeded number
  of answers since its last start), while survivors submit and withdraw and partners fetch, and
  restarted on the same store each time. Every case whose number was returned is there after the
  restarts with its PIN, none is half-written, and no partner's view missed a change.
* **Database restart** (PostgreSQL) -- the database goes down mid-run while the hub stays up:
  clients get 503 with ``Retry-After`` (never a 500), retry, and nothing is lost.

Clients retry the way the protocol asks: a submission is resent with the same idempotency key
and body after a lost connection, a 503 or a 429; a partner repeats the same ``FetchHashes``
call (same checkpoint, same page token). Waits between retries are bounded; every run has a
deadline after which it stops and fails. No assertion involves a wall-clock time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

import httpx
import numpy as np
import requests
from hub_server import HubServer, hub_store, init_store, stock_client  # noqa: F401  (hub_store: a fixture)
from threatexchange.exchanges.clients.stopncii.api import StopNCIIAPI

from ncii_hash.submission import make_submission, video_item

SEED = 1616
#: argon2id at its cheapest (time 1, 8 KiB): PIN hashing is not what these tests measure.
PIN_COST = "1,8"
#: Hard limit of one run; a run still going then is stopped and fails.
RUN_DEADLINE_S = 150.0


# ---------------------------------------------------------------------------------- survivors' cases
@dataclass
class Case:
    """One survivor's submission and what the hub answered."""

    key: str  #: the idempotency key, reused on every retry
    body: bytes  #: the submission file, byte for byte the same on every retry
    values: frozenset  #: (signal type, hash value) the stock feed must list under the case
    items: int
    hashes: int  #: what the hub counts (ImagePDQ + VideoMD5 + one NciiVideoPDQ per video)
    withdraw: bool = False  #: the survivor withdraws it once it is open
    resend: bool = False  #: the survivor sends it again after the answer (a retry that lost nothing)
    number: Optional[str] = None
    pin: Optional[str] = None
    withdrawn: bool = False


def make_cases(n: int, seed: int, *, shared: int = 16, withdraw: float = 0.05, resend: float = 0.1) -> list[Case]:
    """``n`` submissions from a seeded generator: 1-3 images, a video (MD5 + frames) in one in
    ten, and in one in fifty an image hash from a small pool shared with other cases (a hash of
    several cases). Every other value is distinct."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, (shared, 32), dtype=np.uint8)
    cases = []
    for i in range(n):
        images = rng.integers(0, 256, (int(rng.integers(1, 4)), 32), dtype=np.uint8)
        if rng.random() < 0.02:
            images = np.vstack([images, pool[rng.integers(0, shared)][None]])
        videos = []
        if rng.random() < 0.1:
            frames = rng.integers(0, 256, (3, 32), dtype=np.uint8)
            videos.append(video_item(frames, [90, 80, 70], md5=rng.bytes(16).hex()))
        sub = make_submission(images, [100] * len(images), videos=videos)
        values = {("ImagePDQ", h.tobytes().hex()) for h in images}
        values |= {("VideoMD5", v.md5) for v in videos}
        body = json.dumps(sub.to_dict(shuffle=False)).encode()
        cases.append(Case(key=f"fault-{seed}-{i:06d}-" + hashlib.sha256(body).hexdigest()[:16], body=body,
                          values=frozenset(values), items=len(sub), hashes=len(values) + len(videos),
                          withdraw=bool(rng.random() < withdraw), resend=bool(rng.random() < resend)))
    return cases


@dataclass
class Tally:
    """What the clients saw, for the assertions after the run (shared by all threads)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: int = 0  #: 2xx answers from the hub (drives the seeded kill moments)
    statuses: Counter = field(default_factory=Counter)
    unexpected: list = field(default_factory=list)  #: (what, status, detail) that no retry explains
    unavailable_without_retry_after: int = 0
    connection_errors: int = 0
    changed: threading.Condition = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def answered(self) -> None:
        with self.lock:
            self.answers += 1
            self.changed.notify_all()

    def saw(self, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1

    def fault(self, what: str, status: object, detail: object) -> None:
        with self.lock:
            self.unexpected.append((what, status, str(detail)[:300]))


class Run:
    """A deadline and a stop flag shared by every thread of one fault run."""

    def __init__(self, deadline_s: float = RUN_DEADLINE_S):
        self.stop = threading.Event()
        self.expires = time.monotonic() + deadline_s
        self.tally = Tally()

    def expired(self) -> bool:
        return time.monotonic() > self.expires

    def pause(self, seconds: float) -> None:
        """Back off before a retry (bounded by the deadline)."""
        self.stop.wait(min(seconds, max(0.0, self.expires - time.monotonic())))


def _retry_wait(resp: "httpx.Response", run: Run) -> float:
    value = resp.headers.get("Retry-After")
    if value is None or not value.strip().isdigit():
        with run.tally.lock:
            run.tally.unavailable_without_retry_after += 1
        return 0.5
    return min(float(value), 2.0)


def survivor_client(hub_url: str) -> "httpx.Client":
    """A survivor's HTTP client: one connection per request, as ``ncii-hash submit`` makes
    (and as many devices would)."""
    return httpx.Client(base_url=hub_url, timeout=30.0, limits=httpx.Limits(max_keepalive_connections=0))


def survivor_call(client: "httpx.Client", run: Run, method: str, path: str, *, what: str,
                  content: bytes | None = None, payload: dict | None = None,
                  headers: dict | None = None) -> Optional["httpx.Response"]:
    """One survivor request, resent until the hub answers it: after a lost connection (the hub
    was killed), a 503 (the store is down) or a 429. The final answer, or None when the run's
    deadline passed."""
    while not run.expired():
        try:
            resp = client.request(method, path, content=content, json=payload, headers=headers)
        except httpx.TransportError:
            with run.tally.lock:
                run.tally.connection_errors += 1
            run.pause(0.05)
            continue
        run.tally.saw(resp.status_code)
        if resp.status_code in (429, 503):
            run.pause(_retry_wait(resp, run))
            continue
        if resp.status_code >= 500:
            run.tally.fault(what, resp.status_code, resp.text)
            run.pause(0.2)
            continue
        return resp
    run.tally.fault(what, "deadline", "the run's deadline passed before the hub answered")
    return None


def open_case(client: "httpx.Client", run: Run, case: Case) -> None:
    headers = {"Idempotency-Key": case.key, "Content-Type": "application/json"}
    resp = survivor_call(client, run, "POST", "/cases", content=case.body, headers=headers, what="submit")
    if resp is None:
        return
    if resp.status_code not in (200, 201):
        run.tally.fault("submit", resp.status_code, resp.text)
        return
    answer = resp.json()
    case.number, case.pin = answer["case_number"], answer["pin"]
    run.tally.answered()
    if case.resend:  # a retry after an answer that did arrive: the same case, the same PIN
        again = survivor_call(client, run, "POST", "/cases", content=case.body, headers=headers, what="resubmit")
        if again is not None:
            got = again.json() if again.status_code == 200 else {}
            if (again.status_code, got.get("case_number"), got.get("pin")) != (200, case.number, case.pin):
                run.tally.fault("resubmit", again.status_code, again.text)
    if case.withdraw:
        path = f"/cases/{case.number}/withdraw"
        resp = survivor_call(client, run, "POST", path, payload={"pin": case.pin}, what="withdraw")
        if resp is not None and resp.status_code == 200 and resp.json().get("status") == "withdrawn":
            case.withdrawn = True
            run.tally.answered()
        elif resp is not None:
            run.tally.fault("withdraw", resp.status_code, resp.text)


def run_survivors(hub_url: str, run: Run, cases: list[Case], threads: int) -> None:
    """``threads`` survivors, each opening its share of ``cases`` one after another."""
    def survivor(share: list[Case]) -> None:
        with survivor_client(hub_url) as client:
            for case in share:
                if run.expired():
                    return
                open_case(client, run, case)

    with ThreadPoolExecutor(threads, thread_name_prefix="survivor") as pool:
        for f in [pool.submit(survivor, cases[i::threads]) for i in range(threads)]:
            f.result()


# ---------------------------------------------------------------------------------- partners
def record_state(r) -> tuple:
    """What a record tells a platform: the hash's status and the cases it is active in (a
    platform drops a withdrawn case at once; a fetch from before the case was opened does not
    list it at all). Time stamps and feedback aside."""
    active = tuple(sorted(c for c, s in r.caseNumbers.items() if s.value == "Active"))
    return (r.hashStatus.value, active)


class PartnerView:
    """A partner's copy of the feed through the stock client: every page applied in order (a
    record replaces what was seen of its hash), checkpoint = the page's ``nextSetTimestamp``.
    A failed call is repeated as it was (same checkpoint, same token) until it is answered."""

    def __init__(self, keys: tuple[str, str, str], run: Run, *, page_size: int = 500):
        self.api = stock_client(keys)  # base URL: the key line's third field
        self.run = run
        self.page_size = page_size
        self.records: dict = {}
        self.checkpoint = StopNCIIAPI.DEFAULT_START_TIME
        self.pages = 0
        self.retries = 0

    def catch_up(self) -> bool:
        """Pull one whole delta from the checkpoint; False when the run ended first."""
        token = ""
        while not self.run.expired():
            try:
                page = self.api.fetch_hashes(page_size=self.page_size, start_timestamp=self.checkpoint,
                                             next_page=token)
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if status is not None and status != 503 and status < 500:  # a protocol fault: no retry helps
                    self.run.tally.fault("fetch", status, exc.response.text)
                    return False
                self.retries += 1
                self.run.pause(0.1)
                continue
            except requests.RequestException:  # killed hub, or retries of the client itself used up
                self.retries += 1
                self.run.pause(0.1)
                continue
            self.pages += 1
            for r in page.hashRecords:
                self.records[(r.signalType.value, r.hashValue)] = record_state(r)
            self.checkpoint = page.nextSetTimestamp
            if not page.hasMoreRecords:
                return True
            token = page.nextPageToken or ""
        self.run.tally.fault("fetch", "deadline", "the run's deadline passed inside a delta")
        return False

    def follow(self) -> None:
        """Fetch continuously until the run stops, then catch up once more."""
        while not self.run.stop.is_set() and not self.run.expired():
            if not self.catch_up():
                return
        self.catch_up()

    def live(self) -> dict:
        """The records a platform keeps: withdrawn ones are deleted at once."""
        return {k: v for k, v in self.records.items() if v[0] != "Withdrawn"}


def full_fetch(keys: tuple[str, str, str]) -> dict:
    """The whole feed from the beginning, through a fresh stock client."""
    run = Run(60.0)
    view = PartnerView(keys, run, page_size=2000)
    assert view.catch_up(), run.tally.unexpected
    return view.records


# ---------------------------------------------------------------------------------- the checks
def _example(keys, view: dict, full: dict) -> str:
    key = next(iter(keys))
    return f"{key}: partner {view.get(key)}, full fetch {full.get(key)}"


def check_outcome(hub_url: str, keys: list, views: list[PartnerView], cases: list[Case], run: Run, *,
                  check_status: Callable[[Case], bool] = lambda case: True) -> dict:
    """Every assertion after a run; returns the full fetch."""
    tally = run.tally
    assert tally.unexpected == [], tally.unexpected[:10]
    assert tally.unavailable_without_retry_after == 0, "a 429/503 came without Retry-After"
    assert all(c.number for c in cases), f"{sum(1 for c in cases if not c.number)} submissions got no case number"
    numbers_given = [c.number for c in cases]
    assert len(set(numbers_given)) == len(numbers_given), "two submissions got the same case number"

    full = full_fetch(keys[0])
    assert all(state[0] == "Active" for state in full.values()), \
        "a full fetch from the beginning sent a hash that no active case holds"
    active_in: dict = {}  # case number -> the hashes the feed lists it active for
    for value, (_, numbers) in full.items():
        for number in numbers:
            active_in.setdefault(number, set()).add(value)
    known = set(numbers_given)
    assert set(active_in) <= known, f"cases nobody was given a number for: {sorted(set(active_in) - known)[:5]}"
    for c in cases:
        listed = active_in.get(c.number, set())
        if c.withdrawn:
            assert not listed, f"withdrawn case {c.number} is still active in the feed"
        else:
            assert listed == c.values, f"case {c.number}: the feed lists {len(listed)} of its {len(c.values)} hashes"

    expected_live = full
    for i, view in enumerate(views):
        live = view.live()
        missing, extra = expected_live.keys() - live.keys(), live.keys() - expected_live.keys()
        differ = [k for k in expected_live.keys() & live.keys() if live[k] != expected_live[k]]
        assert not missing and not extra and not differ, (
            f"partner {i}'s incremental view differs from a full fetch: {len(missing)} missing, "
            f"{len(extra)} kept that are gone, {len(differ)} in another state (e.g. "
            + _example(missing or extra or differ, live, expected_live) + ")")

    with survivor_client(hub_url) as client:
        for c in cases:
            if not check_status(c):
                continue
            resp = survivor_call(client, run, "POST", f"/cases/{c.number}/status", payload={"pin": c.pin},
                                 what="status")
            assert resp is not None and resp.status_code == 200, (c.number, resp and resp.text)
            got = resp.json()
            want = ("withdrawn" if c.withdrawn else "active", c.items, c.hashes)
            assert (got["status"], got["items"], got["hashes"]) == want, (c.number, got, want)
    return full


# ---------------------------------------------------------------------------------- the hub, as a process
def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_hub(store: str, partners: int) -> tuple[HubServer, list]:
    """A hub over ``store`` on a port that stays the same across restarts (the partners' base
    URL is fixed), and ``partners`` key lines from ``hub add-partner``."""
    hub = HubServer(store, pin_cost=PIN_COST, extra_args=("--port", str(_free_port()))).start()
    try:
        with ThreadPoolExecutor(partners) as pool:  # one CLI process each
            return hub, list(pool.map(hub.add_partner, [f"partner-{i}" for i in range(partners)]))
    except BaseException:
        hub.close()
        raise


def sample_of(cases: list[Case], n: int, seed: int) -> set:
    picked = np.random.default_rng(seed).choice(len(cases), min(n, len(cases)), replace=False)
    return {cases[int(i)].key for i in picked}


def wait_for_answers(run: Run, more: int, done: threading.Event) -> bool:
    """Block until the hub gave ``more`` further answers; False when the survivors finished
    (or the run expired) first."""
    with run.tally.changed:
        goal = run.tally.answers + more
        while run.tally.answers < goal:
            if done.is_set() or run.expired():
                return False
            run.tally.changed.wait(0.5)
    return True


def run_with_chaos(hub: HubServer, keys: list, cases: list[Case], *, survivors: int, partners: int,
                   chaos: Callable[[Run, threading.Event], None]) -> tuple[Run, list[PartnerView]]:
    """Survivors and partners against ``hub`` while ``chaos(run, survivors_done)`` runs in a
    thread of its own; everything joined before it returns."""
    run = Run()
    survivors_done = threading.Event()
    views = [PartnerView(keys[i], run) for i in range(partners)]
    with ThreadPoolExecutor(partners + 1, thread_name_prefix="fault") as pool:
        followers = [pool.submit(v.follow) for v in views]
        troublemaker = pool.submit(chaos, run, survivors_done)
        try:
            run_survivors(hub.url, run, cases, threads=survivors)
        finally:
            survivors_done.set()
            troublemaker.result()  # the hub is up again when chaos returns
            run.stop.set()
            for f in followers:
                f.result()
    return run, views


# ---------------------------------------------------------------------------------- the tests
def test_load_5000_cases_50_survivors_5_partners(hub_store):
    hub, keys = start_hub(hub_store, partners=5)
    with contextlib.closing(hub):
        cases = make_cases(5000, SEED)
        run, views = run_with_chaos(hub, keys, cases, survivors=50, partners=5, chaos=lambda run, done: None)
        assert all(v.pages > 1 for v in views), "a partner never fetched while cases were opened"
        assert sum(c.withdrawn for c in cases) > 100 and sum(c.resend for c in cases) > 300
        # status costs an argon2 check per call: a seeded sample; the feed checks cover every case
        sampled = sample_of(cases, 300, SEED)
        check_outcome(hub.url, keys, views, cases, run, check_status=lambda c: c.key in sampled)


KILLS = 20


def test_kill_9_twenty_times_loses_and_skips_nothing(hub_store):
    hub, keys = start_hub(hub_store, partners=2)
    rng = np.random.default_rng(SEED + 2)
    kills = []

    def chaos(run: Run, survivors_done: threading.Event) -> None:
        # each kill comes after a seeded number of answers since the last start, while 8
        # survivors and 2 partners have requests in flight
        for _ in range(KILLS):
            if not wait_for_answers(run, int(rng.integers(2, 30)), survivors_done):
                return
            hub.kill()
            kills.append(run.tally.answers)
            hub.start()

    with contextlib.closing(hub):
        cases = make_cases(800, SEED + 1, withdraw=0.15, resend=0.05)
        run, views = run_with_chaos(hub, keys, cases, survivors=8, partners=2, chaos=chaos)
        assert len(kills) == KILLS, f"only {len(kills)} kills before the survivors were done"
        assert run.tally.connection_errors > 0, "no request was ever cut off by a kill"
        check_outcome(hub.url, keys, views, cases, run)


def test_postgresql_restart_mid_run_is_503_and_loses_nothing(pg_server, pg_url):
    init_store(pg_url)
    hub, keys = start_hub(pg_url, partners=2)
    rng = np.random.default_rng(SEED + 4)
    down = []  # 503s seen while the database was down, per restart

    def chaos(run: Run, survivors_done: threading.Event) -> None:
        # the database goes down at seeded moments, and comes back once a client was told 503
        for _ in range(3):
            if not wait_for_answers(run, int(rng.integers(20, 120)), survivors_done):
                return
            seen = run.tally.statuses[503]
            pg_server.stop()
            try:
                while run.tally.statuses[503] == seen and not run.expired():
                    run.pause(0.05)
            finally:
                pg_server.start()
            down.append(run.tally.statuses[503] - seen)

    with contextlib.closing(hub):
        cases = make_cases(600, SEED + 3, withdraw=0.15, resend=0.05)
        run, views = run_with_chaos(hub, keys, cases, survivors=8, partners=2, chaos=chaos)
        assert len(down) == 3 and all(n > 0 for n in down), down
        assert hub.proc is not None and hub.proc.poll() is None, "the hub died with its database"
        check_outcome(hub.url, keys, views, cases, run)
