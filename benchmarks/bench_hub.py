"""The exchange hub over HTTP on loopback (docs/hub.md): case ingest, feed throughput and
withdrawal propagation, on SQLite and (when its server binaries are found) PostgreSQL.

* **Ingest** -- survivors open cases (3 image hashes each) with ``POST /cases`` from 8 threads,
  one connection per request as ``ncii-hash submit`` makes them: cases/s, and p50/p99 latency of
  one submission. At the cheapest PIN cost (the store and HTTP path) on every store, and at the
  production default (argon2id time 3, 64 MiB) on SQLite, where argon2 is the cost.
* **Feed** -- a hub holding N hashes (quick 20k, full 1M; ``--hashes N``), read from the
  beginning by the stock ``threatexchange`` ``StopNCIIAPI`` client (its ``fetch_hashes_iter``,
  800 records a page, records parsed into its dataclasses and kept in memory) and by
  ``HashBank.sync`` (the same pages, banked: rows, index, checkpoint, into a fresh bank):
  records/s, side by side; ``HashBank.sync`` vs stock is the ratio.
* **Withdrawal propagation** -- a platform bank synced from the hub holds a case; time from the
  survivor's ``case withdraw`` request to the platform's ``bank.match`` of the case's hashes
  finding nothing, with one ``HashBank.sync`` in between (what a platform running ``ncii-hash
  bank sync --every S`` does, plus up to S seconds of waiting for its next round).

Hubs run as ``ncii-hash hub serve`` child processes (tests/hub_server.py); the PostgreSQL
cluster is a throwaway one started as the test fixture starts it (tests/pg_cluster.py).
Fixed seeds; warm-up; timings never fail the run, only a crash does.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks import harness

NAME = "hub"
TESTS = Path(__file__).resolve().parent.parent / "tests"
MIN_PIN_COST = "1,8"  #: argon2id time 1, 8 KiB: measures the store and HTTP, not the PIN hash
DEFAULT_PIN_COST = "3,65536"  #: ``hub serve``'s default
INGEST_THREADS = 8
IMAGES_PER_CASE = 3
FILL_HASHES_PER_CASE = 100  #: the feed's hashes come in cases of this many
FILL_THREADS = 4
HUB_MODULES = ("fastapi", "uvicorn", "argon2", "httpx")


def _submission(rng: np.random.Generator, images: int) -> bytes:
    from ncii_hash.submission import make_submission

    codes = rng.integers(0, 256, (images, 32), dtype=np.uint8)
    return json.dumps(make_submission(codes, [100] * images).to_dict(shuffle=False)).encode()


class Survivors:
    """Opens cases on one hub from ``threads`` threads, one connection per request; keeps the
    latency of every submission."""

    def __init__(self, url: str, seed: int, *, images: int = IMAGES_PER_CASE, threads: int = INGEST_THREADS):
        import httpx

        self._httpx = httpx
        self.url = url
        self.seed = seed  #: distinct per instance: it names the idempotency keys
        self.rng = np.random.default_rng(seed)
        self.images = images
        self.threads = threads
        self.rounds: list[list[float]] = []  #: latencies (s) of each call of ``open``
        self.opened: list[tuple[str, str, bytes]] = []  #: (case number, PIN, body)
        self._count = 0
        self._lock = threading.Lock()

    def open(self, n: int) -> None:
        bodies = [_submission(self.rng, self.images) for _ in range(n)]
        keys = [f"bench-{self.seed}-{self._count + i:09d}-0123456789abcdef" for i in range(n)]
        self._count += n
        latencies: list[float] = []

        def one(k: int) -> None:
            with self._httpx.Client(base_url=self.url, timeout=120.0,
                                    limits=self._httpx.Limits(max_keepalive_connections=0)) as client:
                for i in range(k, n, self.threads):
                    t0 = time.perf_counter()
                    resp = client.post("/cases", content=bodies[i], headers={
                        "Idempotency-Key": keys[i], "Content-Type": "application/json"})
                    elapsed = time.perf_counter() - t0
                    resp.raise_for_status()
                    answer = resp.json()
                    with self._lock:
                        latencies.append(elapsed)
                        self.opened.append((answer["case_number"], answer["pin"], bodies[i]))

        with ThreadPoolExecutor(self.threads) as pool:
            for f in [pool.submit(one, k) for k in range(self.threads)]:
                f.result()
        self.rounds.append(latencies)

    def timed_latencies(self) -> list[float]:
        """Latencies of the timed calls (the first call was the warm-up)."""
        return sorted(x for r in self.rounds[1:] for x in r)


def _percentiles(latencies: list[float]) -> dict:
    if not latencies:
        return {}
    return {"p50_ms": round(harness.quantile(latencies, 0.5) * 1e3, 2),
            "p99_ms": round(harness.quantile(latencies, 0.99) * 1e3, 2), "n": len(latencies)}


def _withdraw(url: str, case_number: str, pin: str) -> None:
    import httpx

    resp = httpx.post(f"{url}/cases/{case_number}/withdraw", json={"pin": pin}, timeout=60.0)
    resp.raise_for_status()


def run(ctx: harness.Context) -> None:
    missing = [m for m in HUB_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        ctx.note(f"hub benchmark not run: {', '.join(missing)} not installed (pip install 'ncii-hash[hub,test]')")
        return
    stopncii = ctx.peer("threatexchange.exchanges.clients.stopncii.api", dist="threatexchange")
    sys.path.insert(0, str(TESTS))
    import hub_server
    import pg_cluster

    from ncii_hash.bank import HashBank

    n_feed = int(os.environ.get("NCII_HASH_BENCH_HUB_HASHES") or ctx.pick(20_000, 1_000_000))
    n_ingest = ctx.pick(160, 800)
    n_ingest_default_cost = ctx.pick(8, 32)
    reps = ctx.pick(3, 5)
    feed_reps = ctx.pick(3, 3 if n_feed <= 200_000 else 1)
    ctx.config.update(seed=ctx.seed, feed_hashes=n_feed, fill_hashes_per_case=FILL_HASHES_PER_CASE,
                      ingest_cases_per_call=n_ingest, ingest_threads=INGEST_THREADS, images_per_case=IMAGES_PER_CASE,
                      ingest_default_cost_cases_per_call=n_ingest_default_cost, min_pin_cost=MIN_PIN_COST,
                      default_pin_cost=DEFAULT_PIN_COST, page_size=800, repeats=reps, feed_repeats=feed_reps)

    work = Path(tempfile.mkdtemp(prefix="ncii-bench-hub-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, True)
        targets = {"sqlite": str(work / "hub.db")}
        reason = pg_cluster.unavailable_reason()
        if reason is None:
            cluster = pg_cluster.PgCluster()
            stack.callback(cluster.close)
            _, url = cluster.create_database()
            hub_server.init_store(url)
            targets["postgresql"] = url
            ctx.config["postgresql"] = "throwaway cluster (tests/pg_cluster.py: fsync=off, synchronous_commit=off)"
        else:
            ctx.note(f"PostgreSQL not measured: {reason}")
        hubs = {}
        for store, target in targets.items():
            hubs[store] = stack.enter_context(hub_server.HubServer(target, pin_cost=MIN_PIN_COST))
        keys = {store: hub.add_partner("bench") for store, hub in hubs.items()}

        # ---- ingest -------------------------------------------------------------------------------
        survivors = {store: Survivors(hub.url, ctx.seed + k) for k, (store, hub) in enumerate(hubs.items())}
        ctx.compare("ingest/cases", {store: (lambda s=s: s.open(n_ingest)) for store, s in survivors.items()},
                    items=n_ingest, per="case", repeats=reps)
        latency = {store: _percentiles(s.timed_latencies()) for store, s in survivors.items()}
        if "postgresql" in hubs:
            ctx.ratio("ingest/cases", "postgresql", "sqlite", label="ingest/cases PostgreSQL vs SQLite")

        costly_path = str(work / "hub-default-cost.db")
        costly = stack.enter_context(hub_server.HubServer(costly_path, pin_cost=DEFAULT_PIN_COST))
        at_cost = Survivors(costly.url, ctx.seed + 7)
        ctx.compare("ingest/cases at the default PIN cost", {"sqlite": lambda: at_cost.open(n_ingest_default_cost)},
                    items=n_ingest_default_cost, per="case", repeats=reps)
        latency["sqlite, default PIN cost"] = _percentiles(at_cost.timed_latencies())
        ctx.config["ingest_latency"] = latency
        for store, p in latency.items():
            ctx.note(f"ingest latency per submission, {store}: p50 {p.get('p50_ms')} ms, p99 {p.get('p99_ms')} ms "
                     f"({p.get('n')} submissions, {INGEST_THREADS} at a time)")

        # ---- feed ---------------------------------------------------------------------------------
        fill_rate, held = {}, {}
        for k, (store, hub) in enumerate(hubs.items()):
            ingested = IMAGES_PER_CASE * len(survivors[store].opened)
            filler = Survivors(hub.url, ctx.seed + 100 + k, images=FILL_HASHES_PER_CASE, threads=FILL_THREADS)
            fill_cases = -(-max(0, n_feed - ingested) // FILL_HASHES_PER_CASE)
            t0 = time.perf_counter()
            filler.open(fill_cases)
            fill_rate[store] = round(fill_cases * FILL_HASHES_PER_CASE / (time.perf_counter() - t0))
            held[store] = ingested + fill_cases * FILL_HASHES_PER_CASE
        ctx.config.update(fill_hashes_per_s=fill_rate, feed_hashes_held=held)
        counts: dict = {}
        banks = iter(range(10**6))

        def stock_read(key_line) -> Callable[[], None]:
            def read() -> None:
                api = hub_server.stock_client(key_line)
                seen = {}
                for page in api.fetch_hashes_iter():
                    for r in page.hashRecords:
                        seen[(r.signalType, r.hashValue)] = r
                counts.setdefault(("stock", key_line[2]), set()).add(len(seen))
            return read

        def bank_sync(key_line) -> Callable[[], None]:
            def read() -> None:
                path = work / f"platform-{next(banks)}.db"
                with HashBank(path, snapshot=False) as bank:
                    report = bank.sync(None, key_line)
                    counts.setdefault(("sync", key_line[2]), set()).add((report.records, len(bank), report.complete))
                for p in work.glob(path.name + "*"):
                    p.unlink()
            return read

        for store, key_line in keys.items():
            name, n_held = f"feed/{store}", held[store]
            ctx.compare(name, {"StopNCIIAPI": stock_read(key_line) if stopncii else None,
                               "HashBank.sync": bank_sync(key_line)},
                        items=n_held, per="record", repeats=feed_reps, warmup=1 if feed_reps > 1 else 0)
            ctx.ratio(name, "HashBank.sync", "StopNCIIAPI", label=f"{name} HashBank.sync vs stock client")
            synced = counts.get(("sync", key_line[2]), set())
            ctx.check(f"{store}: every sync read and banked all {n_held} hashes",
                      synced == {(n_held, n_held, True)}, seen=sorted(synced))
            if stopncii:
                stock = counts.get(("stock", key_line[2]), set())
                ctx.check(f"{store}: the stock client read all {n_held} records", stock == {n_held}, seen=sorted(stock))

        # ---- withdrawal propagation -----------------------------------------------------------------
        for store, hub in hubs.items():
            platform = HashBank(work / f"propagation-{store}.db")
            stack.callback(platform.close, save_snapshot=False)
            cases = Survivors(hub.url, ctx.seed + 200)
            cases.open(reps + 2)
            platform.sync(None, keys[store])
            pending = [(number, pin, read_hashes(body)) for number, pin, body in cases.opened]
            found_before = all(platform.match(h, 0, dihedral=False) for _, _, h in pending)
            gone_after = []

            def withdraw_and_sync(hub_url=hub.url, pending=pending, platform=platform, key_line=keys[store],
                                  gone_after=gone_after) -> None:
                number, pin, hashes = pending.pop()
                _withdraw(hub_url, number, pin)
                platform.sync(None, key_line)
                gone_after.append(not platform.match(hashes, 0, dihedral=False))

            ctx.compare(f"withdrawal/{store}", {"case withdraw -> sync -> no match": withdraw_and_sync},
                        items=1, per="withdrawal", repeats=reps)
            ctx.check(f"{store}: the platform matched every case before, and none after its withdrawal",
                      found_before and all(gone_after) and len(gone_after) == reps + 1,
                      withdrawals=len(gone_after))
        ctx.note("withdrawal propagation excludes the platform's wait for its next sync round "
                 "(ncii-hash bank sync --every S adds up to S seconds)")
        ctx.note("clients use one connection per request, as ncii-hash submit makes them")

        for m in ctx.measurements:  # the absolute numbers, next to the ratios
            if m["name"].startswith("withdrawal/"):
                ctx.note(f"{m['name']}: median {m['stats']['median'] * 1e3:.1f} ms "
                         f"(q1 {m['stats']['q1'] * 1e3:.1f}, q3 {m['stats']['q3'] * 1e3:.1f})")
            else:
                ctx.note(f"{m['name']}, {m['subject']}: {m['throughput_per_s']:,.0f} {m['per']}s/s")
        groups = list(hubs)
        ingest = {m["subject"]: m["throughput_per_s"] for m in ctx.measurements if m["name"] == "ingest/cases"}
        ctx.plot_bars("hub_ingest.png", "Case ingest over HTTP (cases/s)", groups,
                      {"cases/s": [ingest.get(g) for g in groups]}, ylabel="cases/s")
        feed = {(m["name"], m["subject"]): m["throughput_per_s"] for m in ctx.measurements if m["name"].startswith("feed/")}
        ctx.plot_bars("hub_feed.png", f"Feed read from the beginning, {n_feed} hashes (records/s)", groups,
                      {subject: [feed.get((f"feed/{g}", subject)) for g in groups]
                       for subject in ("StopNCIIAPI", "HashBank.sync")}, ylabel="records/s")


def read_hashes(body: bytes) -> np.ndarray:
    """The image hashes of a submission body, as the platform would be asked to match them."""
    from ncii_hash.submission import parse_submission

    return parse_submission(json.loads(body)).hashes


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--hashes" in args:  # e.g. --hashes 200000: the feed's size in a full run
        i = args.index("--hashes")
        os.environ["NCII_HASH_BENCH_HUB_HASHES"] = str(int(args[i + 1]))
        del args[i:i + 2]
    return harness.main(run, NAME, args)


if __name__ == "__main__":
    raise SystemExit(main())
