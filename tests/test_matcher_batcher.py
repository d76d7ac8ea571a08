"""The lookup batcher: lookups that arrive while a kernel call runs join the next call (one
call for all of them), each gets its own rows' hits, an error reaches every waiter of its call
and the worker carries on; and the matcher says 503 until its index is loaded."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ncii_hash.service.matcher.batcher import LookupBatcher


def test_waiting_lookups_join_one_kernel_call():
    started, release = threading.Event(), threading.Event()
    calls: list[tuple[int, int, bool]] = []

    def search(queries: np.ndarray, radius: int, dihedral: bool) -> list:
        calls.append((len(queries), radius, dihedral))
        started.set()
        release.wait(30)
        return [[int(q[0])] for q in queries]  # each row's "hits": its first byte

    batcher = LookupBatcher(search)
    try:
        first = batcher.submit(np.full((1, 32), 7, np.uint8), 31)
        assert started.wait(30)  # the first call is running...
        waiting = [batcher.submit(np.full((2, 32), i, np.uint8), 31) for i in range(10)]  # ...these wait
        other = batcher.submit(np.full((1, 32), 99, np.uint8), 5)  # other options: a call of its own
        release.set()
        assert first.result(30) == [[7]]
        for i, f in enumerate(waiting):
            assert f.result(30) == [[i], [i]]
        assert other.result(30) == [[99]]
        assert calls == [(1, 31, False), (20, 31, False), (1, 5, False)]
    finally:
        release.set()
        batcher.close()


def test_event_loop_lookups_are_settled_together():
    """submit_async: the lookups of one turn of the loop go to the worker as one call while it
    is idle; those of later turns wait for the running call and join the next; the asyncio
    futures of one call are settled by one hand-over to the loop."""
    import asyncio

    release = threading.Event()
    calls: list[tuple[int, str]] = []

    def search(queries: np.ndarray, radius: int, dihedral: bool) -> list:
        calls.append((len(queries), threading.current_thread().name))
        release.wait(30)
        if radius == 1:
            raise ValueError("bad call")
        return [[int(q[0])] for q in queries]

    async def main(batcher: LookupBatcher) -> tuple:
        first = [batcher.submit_async(np.full((1, 32), i, np.uint8), 31) for i in (1, 2)]  # one turn
        while not calls:
            await asyncio.sleep(0.001)
        rest = [batcher.submit_async(np.full((1, 32), i, np.uint8), 31) for i in range(5)]
        bad = batcher.submit_async(np.zeros((1, 32), np.uint8), 1)
        await asyncio.sleep(0.05)
        release.set()
        results = await asyncio.gather(*first, *rest)
        with pytest.raises(ValueError, match="bad call"):
            await bad
        return results

    batcher = LookupBatcher(search)
    try:
        assert asyncio.run(main(batcher)) == [[[1]], [[2]], *[[[i]] for i in range(5)]]
        assert [n for n, _ in calls] == [2, 5, 1]
        assert {t for _, t in calls} == {"ncii-hash-lookup-batcher"} and batcher.inline_calls == 0
    finally:
        release.set()
        batcher.close()


def test_a_lone_lookup_on_an_idle_batcher_is_searched_on_the_loop():
    """No hand-over between threads for a lookup alone in its turn while the worker is idle;
    the worker still takes lookups that arrive together, and a failing inline search reaches
    its waiter only."""
    import asyncio

    threads: list[str] = []

    def search(queries: np.ndarray, radius: int, dihedral: bool) -> list:
        threads.append(threading.current_thread().name)
        if radius == 1:
            raise ValueError("bad call")
        return [[int(q[0]), radius, dihedral] for q in queries]

    async def main(batcher: LookupBatcher) -> tuple:
        loop_thread = threading.current_thread().name
        alone = await batcher.submit_async(np.full((2, 32), 3, np.uint8), 12, True)
        with pytest.raises(ValueError, match="bad call"):
            await batcher.submit_async(np.zeros((1, 32), np.uint8), 1)
        together = await asyncio.gather(*[batcher.submit_async(np.full((1, 32), i, np.uint8), 31) for i in range(3)])
        return loop_thread, alone, together

    batcher = LookupBatcher(search)
    try:
        loop_thread, alone, together = asyncio.run(main(batcher))
        assert alone == [[3, 12, True], [3, 12, True]]
        assert together == [[[i, 31, False]] for i in range(3)]
        assert threads == [loop_thread, loop_thread, "ncii-hash-lookup-batcher"]
        assert batcher.inline_calls == 2 and batcher.calls == 2  # the failed call is not counted
    finally:
        batcher.close()


def test_an_error_reaches_every_waiter_of_its_call_and_the_worker_goes_on():
    def search(queries: np.ndarray, radius: int, dihedral: bool) -> list:
        if radius == 1:
            raise ValueError("bad call")
        return [[] for _ in queries]

    batcher = LookupBatcher(search)
    try:
        bad = batcher.submit(np.zeros((1, 32), np.uint8), 1)
        with pytest.raises(ValueError, match="bad call"):
            bad.result(30)
        assert batcher.submit(np.zeros((3, 32), np.uint8), 31).result(30) == [[], [], []]
    finally:
        batcher.close()
    with pytest.raises(RuntimeError):
        batcher.submit(np.zeros((1, 32), np.uint8), 31)


def test_status_is_503_until_the_index_is_loaded(tmp_path):
    """The app before its index is loaded (its lifespan, which opens the bank, not run)."""
    import asyncio

    import httpx

    from ncii_hash.service.matcher import Matcher, create_matcher_app

    async def ask() -> list[httpx.Response]:
        app = create_matcher_app(Matcher(str(tmp_path / "absent.db")))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            return [await client.get("/status"), await client.get("/status/live"),
                    await client.get("/m/lookup", params={"signal_type": "pdq", "signal": "0" * 64}),
                    await client.get("/c/banks")]

    status, live, lookup, banks = asyncio.run(ask())
    assert (status.status_code, status.text) == (503, "INDEX-NOT-LOADED")
    assert (live.status_code, live.text) == (200, "I-AM-ALIVE")
    assert lookup.status_code == 503 and lookup.json() == {"message": "index not yet ready"}
    assert banks.status_code == 503 and "message" in banks.json()


def test_lookups_left_by_a_closed_loop_do_not_stall_the_next_loop():
    """A loop that stopped before its turn ended leaves its gathered lookups behind; the next
    loop's lookups are still answered (the stale ones go to the worker)."""
    import asyncio

    batcher = LookupBatcher(lambda q, r, d: [[int(x[0])] for x in q])
    try:
        first, held = asyncio.new_event_loop(), []

        def submit_then_stop() -> None:  # the flush it queues would run in the next turn: there is none
            held.append(batcher.submit_async(np.full((1, 32), 9, np.uint8), 31))
            first.stop()
        first.call_soon(submit_then_stop)
        first.run_forever()
        first.close()
        assert not held[0].done()

        async def ask():
            return await batcher.submit_async(np.full((1, 32), 4, np.uint8), 31)
        assert asyncio.run(ask()) == [[4]]
    finally:
        batcher.close()
