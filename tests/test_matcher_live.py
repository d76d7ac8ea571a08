"""The matcher's index is live: every matcher process applies adds and withdrawals from the
store's change log as they commit (PostgreSQL LISTEN/NOTIFY plus a poll; SQLite a poll),
within 1 s (polled with a deadline; each check is tried at least once); a kill -9 loses
nothing and a restarted matcher serves the current bank, from the saved snapshot plus the log
tail where the store keeps one; with several matcher processes and one writer all agree."""

from __future__ import annotations

import httpx
import numpy as np

from matcher_helpers import init_bank, random_hex, start_matcher, until
from ncii_hash.bank import HashBank


def raw(client: httpx.Client, hex_value: str) -> list:
    r = client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": hex_value})
    assert r.status_code == 200, r.text
    return r.json()["matches"]


def codes(hex_value: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(hex_value), np.uint8).reshape(1, 32)


def test_two_matchers_and_a_writer_agree(store):
    init_bank(store)
    rng = np.random.default_rng(170)
    a, b = start_matcher(store), start_matcher(store)
    clients = [httpx.Client(base_url=s.url, timeout=30) for s in (a, b)]
    writer = HashBank(store, create=False)
    try:
        # a case the writer banks reaches both matchers; its withdrawal leaves both
        value = random_hex(rng)
        case = writer.add_case(codes(value))
        for c in clients:
            assert until(lambda c=c: len(raw(c, value)) == 1)
        writer.withdraw(case)
        for c in clients:
            assert until(lambda c=c: raw(c, value) == []), "a withdrawn case still matches"

        # content added and deleted through one matcher's API, seen by the other
        assert clients[0].post("/c/banks", json={"name": "LIVE_BANK"}).status_code == 201
        value = random_hex(rng)
        cid = clients[0].post("/c/bank/LIVE_BANK/signal", json={"pdq": value}).json()["id"]
        assert until(lambda: raw(clients[1], value) == [cid])
        assert clients[0].delete(f"/c/bank/LIVE_BANK/content/{cid}").json()["deleted"] == 1
        for c in clients:
            assert until(lambda c=c: raw(c, value) == []), "deleted content still matches"

        # many changes: both matchers answer exactly what the writer left banked
        values = [random_hex(rng) for _ in range(24)]
        cases = [writer.add_case(codes(v)) for v in values]
        gone = set(range(0, 24, 3))
        for i in sorted(gone):
            writer.withdraw(cases[i])
        for c in clients:
            for i, v in enumerate(values):
                assert until(lambda c=c, i=i, v=v: (raw(c, v) == []) == (i in gone)), (i, i in gone)
        # (a withdrawn value is absent even before its add arrived: the sizes settle it)
        assert until(lambda: [c.get("/m/index/status").json()["pdq"]["size"] for c in clients] == [len(writer)] * 2)
    finally:
        writer.close()
        for c in clients:
            c.close()
        a.close()
        b.close()


def test_kill_9_loses_nothing_and_a_restart_serves_the_current_bank(store):
    init_bank(store)
    rng = np.random.default_rng(171)
    server = start_matcher(store)
    client = httpx.Client(base_url=server.url, timeout=30)
    writer = HashBank(store, create=False)
    try:
        assert client.post("/c/banks", json={"name": "KEPT_BANK"}).status_code == 201
        kept, dropped = random_hex(rng), random_hex(rng)
        kept_id = client.post("/c/bank/KEPT_BANK/signal", json={"pdq": kept}).json()["id"]
        dropped_id = client.post("/c/bank/KEPT_BANK/signal", json={"pdq": dropped}).json()["id"]
        assert client.delete(f"/c/bank/KEPT_BANK/content/{dropped_id}").json()["deleted"] == 1
        server.kill()  # kill -9: no shutdown, no snapshot
        later = random_hex(rng)
        later_case = writer.add_case(codes(later))
        server.start()
        client.base_url = httpx.URL(server.url)
        assert until(lambda: client.get("/status").status_code == 200, 60)
        assert raw(client, kept) == [kept_id] and raw(client, dropped) == [] and len(raw(client, later)) == 1

        # a graceful stop saves the index (SQLite); the next start loads it and applies the log tail
        server.stop()
        tail = random_hex(rng)
        writer.add_case(codes(tail))
        writer.withdraw(later_case)
        server.start()
        client.base_url = httpx.URL(server.url)
        assert until(lambda: client.get("/status").status_code == 200, 60)
        status = client.get("/m/index/status").json()["pdq"]
        assert status["size"] == len(writer)
        if not store.startswith("postgresql://"):
            # the withdrawal deleted every snapshot (no copy of a withdrawn hash stays on disk)
            assert status["source"] == "rebuilt"
        assert len(raw(client, tail)) == 1 and raw(client, later) == [] and raw(client, kept) == [kept_id]
    finally:
        writer.close()
        client.close()
        server.close()


def test_a_new_matcher_starts_from_the_snapshot_plus_the_log_tail(tmp_path):
    target = str(tmp_path / "bank.db")
    init_bank(target)
    rng = np.random.default_rng(172)
    with HashBank(target) as writer:
        writer.add_case(rng.integers(0, 256, (500, 32), dtype=np.uint8))
    server = start_matcher(target)
    server.stop()  # saves the snapshot
    tail = random_hex(rng)
    with HashBank(target, create=False) as writer:
        writer.add_case(codes(tail))
        writer.close(save_snapshot=False)
    server.start()
    client = httpx.Client(base_url=server.url, timeout=30)
    try:
        assert until(lambda: client.get("/status").status_code == 200, 60)
        status = client.get("/m/index/status").json()["pdq"]
        assert status["source"] == "snapshot" and status["size"] == 501
        assert len(raw(client, tail)) == 1
    finally:
        client.close()
        server.close()


def test_a_postgresql_commit_wakes_every_listener(pg_url):
    """NOTIFY is sent by the committing write and reaches a LISTEN on another connection at
    once, so a matcher need not wait for its poll."""
    from ncii_hash.bank.store import open_database

    with HashBank(pg_url) as writer:
        db = open_database(pg_url, create=False)
        listeners = [db.change_listener() for _ in range(2)]
        try:
            for listener in listeners:
                assert listener.wait(0.05) is False  # connects and LISTENs; nothing committed yet
            writer.add_case(np.random.default_rng(173).integers(0, 256, (1, 32), dtype=np.uint8))
            for listener in listeners:
                assert listener.wait(30) is True
        finally:
            for listener in listeners:
                listener.close()
            db.close()


def test_a_postgresql_matcher_keeps_its_snapshot_on_its_host_and_drops_it_at_a_withdrawal(pg_url, tmp_path):
    """--snapshot-dir: a graceful stop saves the index (owner-only, named by the bank's stored
    identity); the next start loads it plus the log tail; a withdrawal applied from the log
    deletes it, so no copy of a withdrawn hash stays on the matcher's host either."""
    init_bank(pg_url)
    rng = np.random.default_rng(173)
    snapshots = tmp_path / "snapshots"
    with HashBank(pg_url, create=False) as writer:
        first = writer.add_case(rng.integers(0, 256, (300, 32), dtype=np.uint8))
    server = start_matcher(pg_url, "--snapshot-dir", str(snapshots))
    client = httpx.Client(base_url=server.url, timeout=30)
    try:
        assert client.get("/m/index/status").json()["pdq"]["source"] == "rebuilt"  # nothing saved yet
        server.stop()
        files = sorted(snapshots.iterdir())
        assert len(files) == 1 and files[0].name.startswith("bank-") and ".idx." in files[0].name
        assert files[0].stat().st_mode & 0o777 == 0o600 and snapshots.stat().st_mode & 0o777 == 0o700
        tail = random_hex(rng)
        with HashBank(pg_url, create=False) as writer:
            writer.add_case(codes(tail))
        server.start()
        client.base_url = httpx.URL(server.url)
        assert until(lambda: client.get("/status").status_code == 200, 60)
        status = client.get("/m/index/status").json()["pdq"]
        assert status["source"] == "snapshot" and status["size"] == 301 and len(raw(client, tail)) == 1
        with HashBank(pg_url, create=False) as writer:
            writer.withdraw(first)
        assert until(lambda: not any(snapshots.iterdir()))  # the follower applied it and deleted the file
        assert client.get("/m/index/status").json()["pdq"]["size"] == 1
    finally:
        client.close()
        server.close()
