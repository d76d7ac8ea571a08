"""``matcher serve --workers N``: N forked processes on one port, each with its own index.

A real server process on 127.0.0.1 with two workers, on both stores: connections reach both
workers; a write through one worker (add, delete, a bank's settings) is in the other's next
lookup (the pool's write board), a write from outside the pool arrives by the change log;
a worker killed with SIGKILL is started again by the supervisor and serves the current bank;
SIGTERM to the parent stops every worker. The supervisor's own rules (restart pauses, stop)
are checked on a pool of trivial workers.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import httpx
import pytest

from matcher_helpers import child_pids, init_bank, random_hex, start_matcher, until
from ncii_hash.bank import HashBank
from ncii_hash.service.web import listening_socket
from ncii_hash.service.workers import MAX_PAUSE_SECONDS, WorkerPool, next_pause

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="worker processes need fork()")


def children(pid: int) -> list[int]:
    found = child_pids(pid)
    if found is None:
        pytest.skip("this system's /proc does not list a process's children")
    return found


def client_per_worker(url: str, workers: int) -> dict[int, httpx.Client]:
    """One keep-alive client on each worker (new connections land where the kernel puts them)."""
    found: dict[int, httpx.Client] = {}
    for _ in range(400):
        c = httpx.Client(base_url=url, timeout=30)
        r = c.get("/m/index/status")
        worker = r.json()["pdq"].get("worker") if r.status_code == 200 else None
        if r.status_code == 200 and r.json()["pdq"]["present"] and worker not in found:
            found[worker] = c
        else:
            c.close()
        if len(found) == workers:
            return found
        time.sleep(0.005)
    for c in found.values():
        c.close()
    raise AssertionError(f"connections reached only workers {sorted(found)} of {workers}")


def raw(client: httpx.Client, value: str) -> list:
    r = client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": value})
    assert r.status_code == 200, r.text
    return r.json()["matches"]


def test_two_workers_serve_one_port_follow_each_other_and_survive_a_kill(store):
    import numpy as np

    init_bank(store)
    rng = np.random.default_rng(171)
    server = start_matcher(store, "--workers", "2", "--poll", "5")
    try:
        assert server.proc is not None
        parent = server.proc.pid
        assert until(lambda: len(children(parent)) == 2)
        clients = client_per_worker(server.url, 2)
        w0, w1 = clients[0], clients[1]

        # a write through one worker is in the other's next lookup: the pool's write board (the
        # poll is 30 s here, so on SQLite nothing else could have told worker 1 in time)
        assert w0.post("/c/banks", json={"name": "WORKERS"}).status_code == 201
        value = random_hex(rng)
        cid = w0.post("/c/bank/WORKERS/signal", json={"pdq": value}).json()["id"]
        assert raw(w0, value) == [cid]
        assert raw(w1, value) == [cid], "worker 1 did not see worker 0's write"
        assert w1.get("/c/bank/WORKERS").status_code == 200  # the catalog is the store's, shared
        kept = random_hex(rng)
        kept_id = w1.post("/c/bank/WORKERS/signal", json={"pdq": kept}).json()["id"]
        assert w1.delete(f"/c/bank/WORKERS/content/{cid}").json()["deleted"] == 1
        assert raw(w0, value) == [], "a deleted item still matches on the other worker"
        assert raw(w0, kept) == [kept_id]
        # a catalog write (the bank's ratio to 0) reaches the other worker's next lookup too
        assert w0.put("/c/bank/WORKERS", json={"enabled_ratio": 0.0}).status_code == 200
        assert w1.get("/m/lookup", params={"signal_type": "pdq", "signal": kept}).json() == {}
        # a write from outside the pool (another process) still arrives by the change log
        writer = HashBank(store, create=False)
        try:
            outside = random_hex(rng)
            writer.add_case(np.frombuffer(bytes.fromhex(outside), np.uint8).reshape(1, 32))
        finally:
            writer.close()
        assert until(lambda: len(raw(w0, outside)) == 1 and len(raw(w1, outside)) == 1, deadline=10)

        # kill -9 one worker: the supervisor starts it again, and it serves the current bank
        for c in clients.values():
            c.close()
        victim = children(parent)[0]
        os.kill(victim, signal.SIGKILL)
        assert until(lambda: victim not in children(parent) and len(children(parent)) == 2, deadline=20)
        clients = client_per_worker(server.url, 2)
        for c in clients.values():
            assert raw(c, kept) == [kept_id] and raw(c, value) == [] and len(raw(c, outside)) == 1
            c.close()
        assert "exited with signal SIGKILL; starting it again" in server.output()

        # SIGTERM to the parent stops both workers, and the parent exits cleanly
        workers = children(parent)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0
        for pid in workers:
            assert until(lambda pid=pid: not os.path.exists(f"/proc/{pid}") or _zombie(pid), deadline=5), pid
    finally:
        server.close()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_restart_pauses_grow_while_a_worker_dies_young_and_reset_after_a_long_life():
    pauses = [0.0]
    for _ in range(12):
        pauses.append(next_pause(pauses[-1], lived_seconds=0.1))
    assert pauses[1:4] == [0.5, 1.0, 2.0]
    assert max(pauses) == MAX_PAUSE_SECONDS == pauses[-1]
    assert next_pause(MAX_PAUSE_SECONDS, lived_seconds=3600) == 0.0


def test_the_pool_restarts_dead_workers_on_their_own_socket_and_stops_the_rest():
    sockets = [listening_socket("127.0.0.1", 0, reuse_port=True)[0]]
    port = sockets[0].getsockname()[1]
    sockets.append(listening_socket("127.0.0.1", port, reuse_port=True)[0])
    r, w = os.pipe()

    def target(index: int, sock: socket.socket) -> None:
        # report which socket this worker got; worker 0 then dies at once, worker 1 serves until stopped
        os.write(w, f"{index}:{sock.getsockname()[1]}\n".encode())
        if index == 0:
            os._exit(3)
        while True:
            time.sleep(1)

    pool = WorkerPool(sockets, target, stop_seconds=5)
    timer = threading.Timer(2.5, pool.stop)  # 0.5 s and 1 s pauses: worker 0 starts three times
    timer.start()
    try:
        pool.run()
    finally:
        timer.cancel()
        for s in sockets:
            s.close()
        os.close(w)
    with os.fdopen(r) as f:
        starts = f.read().split()
    assert starts.count(f"1:{port}") == 1
    assert starts.count(f"0:{port}") >= 2 and pool.restarts == starts.count(f"0:{port}") - 1
    assert pool.pids() == [None, None]  # every worker stopped (worker 1 by SIGTERM)


def test_workers_stop_when_the_supervisor_is_killed(tmp_path):
    """kill -9 of the parent: no orphaned worker keeps the port (Linux: parent-death signal)."""
    if os.uname().sysname != "Linux":
        pytest.skip("the parent-death signal is Linux's")
    bank = str(tmp_path / "bank.db")
    init_bank(bank)
    server = start_matcher(bank, "--workers", "2")
    try:
        assert server.proc is not None
        parent = server.proc.pid
        assert until(lambda: len(children(parent)) == 2)
        workers = children(parent)
        server.kill()
        for pid in workers:
            assert until(lambda pid=pid: not os.path.exists(f"/proc/{pid}") or _zombie(pid), deadline=20), pid
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url + "/status/live", timeout=5)
    finally:
        server.close()
