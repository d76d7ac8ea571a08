"""A REAL hub for tests: ``python -m ncii_hash hub serve STORE --port 0`` in a subprocess on
127.0.0.1, its printed address read back, its output captured (so tests can check what it
logs), stopped (or killed) at the end. Also ``HubServer.add_partner`` (the CLI's key line) and
the stock python-threatexchange client for a key line.

Used by tests/test_hub_*.py and by the fault tests (``kill()`` = kill -9; ``start()`` again
on the same store).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Optional

#: Cheap argon2 for tests (time 1, 8 KiB); production default is 3,65536.
TEST_PIN_COST = "1,8"
_ADDRESS = re.compile(r"^ncii-hash hub: serving (http://\S+) \(partner API at (http://\S+)\)$")
_MATCHER_ADDRESS = re.compile(r"^ncii-hash matcher: serving (http://\S+) \(HMA 2.0 API\)( with \d+ worker processes)?$")
STARTUP_SECONDS = 30


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ncii_hash", *args], capture_output=True, text=True, timeout=timeout)


def init_store(target: str) -> None:
    done = run_cli("hub", "init", target)
    assert done.returncode == 0, done.stderr


class HubServer:
    """One hub process over ``store`` (a file path or postgresql:// URL, created if missing).
    ``service="matcher"``: the HMA-compatible matcher over a bank instead (``matcher serve``;
    the bank must exist)."""

    def __init__(self, store: str, *, pin_cost: str = TEST_PIN_COST, extra_args: tuple[str, ...] = (),
                 service: str = "hub"):
        self.service = service
        self.store = str(store)
        self.pin_cost = pin_cost
        self.extra_args = extra_args
        self.proc: Optional[subprocess.Popen] = None
        self.url = ""
        self.api_url = ""
        self._logs: list[str] = []
        self._out_path = Path(tempfile.mkstemp(prefix="hub-out-")[1])
        self._err_path = Path(tempfile.mkstemp(prefix="hub-err-")[1])

    # ---- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> "HubServer":
        hub = self.service == "hub"
        if hub and not self.store.startswith("postgresql://") and not os.path.exists(self.store):
            init_store(self.store)
        self._out_path.write_text("")
        self._err_path.write_text("")
        out = open(self._out_path, "a")
        err = open(self._err_path, "a")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ncii_hash", self.service, "serve", self.store, "--port", "0",
                 *(("--pin-cost", self.pin_cost) if hub else ()), *self.extra_args],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        finally:
            out.close()
            err.close()
        self._wait_for_address()
        return self

    def _wait_for_address(self) -> None:
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                text = self._out_path.read_text()
                if "\n" in text or (self.proc is not None and self.proc.poll() is not None):
                    done.set()
                    return
                done.wait(0.02)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        if not done.wait(STARTUP_SECONDS):
            self.kill()
            raise RuntimeError(f"hub did not print its address in {STARTUP_SECONDS} s: {self.output()}")
        first = self._out_path.read_text().splitlines()[:1]
        m = (_ADDRESS if self.service == "hub" else _MATCHER_ADDRESS).match(first[0]) if first else None
        if m is None:
            self.kill()
            raise RuntimeError(f"{self.service} did not start: {self.output()}")
        self.url = m.group(1)
        self.api_url = m.group(2) if self.service == "hub" else self.url

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL after 15 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self._collect()

    def kill(self) -> None:
        """kill -9: no shutdown at all (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(15)
        self._collect()

    def _collect(self) -> None:
        if self.proc is not None:
            self._logs.append(self._out_path.read_text() + self._err_path.read_text())
            self.proc = None

    def output(self) -> str:
        """Everything the server printed (stdout and stderr), over all its starts so far."""
        current = self._out_path.read_text() + self._err_path.read_text() if self.proc is not None else ""
        return "".join(self._logs) + current

    def close(self) -> None:
        self.stop()
        for p in (self._out_path, self._err_path):
            p.unlink(missing_ok=True)

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- partners ----------------------------------------------------------------------------------
    def add_partner(self, name: str) -> tuple[str, str, str]:
        """``ncii-hash hub add-partner``: the key line's (fetch key, subscription key, base URL)."""
        done = run_cli("hub", "add-partner", self.store, name, "--url", self.api_url or "http://127.0.0.1:1/v1",
                       "--pin-cost", self.pin_cost)
        assert done.returncode == 0, done.stderr
        fetch_key, subscription_key, base_url = done.stdout.strip().split(",")
        return fetch_key, subscription_key, base_url

    def remove_partner(self, name: str) -> subprocess.CompletedProcess:
        return run_cli("hub", "remove-partner", self.store, name)


def stock_client(keys: tuple[str, str, str]):
    """python-threatexchange's StopNCIIAPI, unmodified, for a key line (the partner's one
    function key given for every endpoint, as the hub accepts it)."""
    from threatexchange.exchanges.clients.stopncii.api import StopNCIIAPI, StopNCIIEndpoint

    fetch_key, subscription_key, base_url = keys
    others = {StopNCIIEndpoint.SubmitFeedback: fetch_key, StopNCIIEndpoint.SubmitHashes: fetch_key}
    return StopNCIIAPI(subscription_key, fetch_key, additional_function_keys=others, base_url_override=base_url)


def partner_headers(keys: tuple[str, str, str]) -> dict:
    return {"x-functions-key": keys[0], "Ocp-Apim-Subscription-Key": keys[1]}


# ---- fixtures (import them into a test module: ``from hub_server import hub, hub_store``) ---------
import pytest  # noqa: E402


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_store(request, tmp_path) -> str:
    """Where a hub store lives, once per store kind: a SQLite file path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "hub.db")
    try:
        url = request.getfixturevalue("pg_url")
    except pytest.FixtureLookupError:
        pytest.skip("no PostgreSQL fixture (tests/conftest.py pg_url)")
    init_store(url)
    return url


@pytest.fixture
def hub(hub_store):
    """A running hub over a fresh store; stopped afterwards."""
    server = HubServer(hub_store)
    with server:
        yield server


# ---- survivors' side ---------------------------------------------------------------------------------
def submission_body(seed: int, images: int = 2, videos: int = 0) -> dict:
    """A valid version-1 submission (what ``ncii-hash hash -o`` writes) with seeded hashes."""
    import numpy as np

    from ncii_hash.submission import make_submission, video_item

    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (images, 32), dtype=np.uint8)
    vids = [video_item(rng.integers(0, 256, (3, 32), dtype=np.uint8), [80, 90, 70],
                       md5=bytes(rng.integers(0, 256, 16, dtype=np.uint8)).hex()) for _ in range(videos)]
    return make_submission(codes, [90] * images, videos=vids).to_dict()


def open_case(url: str, body: dict, key: Optional[str] = None):
    """POST /cases; (response, idempotency key)."""
    import secrets

    import httpx

    key = key or secrets.token_urlsafe(32)
    return httpx.post(f"{url}/cases", json=body, headers={"Idempotency-Key": key}, timeout=30), key


class FakeClock:
    """An injectable clock (``HubSettings.clock``): tests move time instead of sleeping."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class InProcessHub:
    """A live uvicorn hub on 127.0.0.1 in a thread of this process, for tests that inject
    settings (a fake clock); the same app factory ``hub serve`` runs."""

    def __init__(self, store_target: str, **settings: object):
        from ncii_hash.service.hub import HubSettings, SecretCost, open_hub_store

        self.store = open_hub_store(store_target, create=True)
        self.settings = HubSettings(pin_cost=SecretCost(1, 8), **settings)  # type: ignore[arg-type]

    def __enter__(self) -> "InProcessHub":
        import socket

        import uvicorn

        from ncii_hash.service.hub import create_hub_app

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.api_url = self.url + "/v1"
        config = uvicorn.Config(create_hub_app(self.store, self.settings), access_log=False, log_config=None,
                                log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        started = threading.Event()
        while not self.server.started and self.thread.is_alive():
            started.wait(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.store.close()

    def add_partner(self, name: str) -> tuple[str, str, str]:
        from ncii_hash.service.hub.credentials import SecretCost, SecretHasher, new_partner_keys

        hasher = SecretHasher(SecretCost(1, 8))
        partner_id, fetch_key, subscription_key = new_partner_keys()
        assert self.store.partners.add(partner_id, name, hasher.hash(fetch_key), hasher.hash(subscription_key), 0.0)
        return fetch_key, subscription_key, self.api_url
