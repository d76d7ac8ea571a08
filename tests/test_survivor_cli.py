"""The survivor's hub commands against a real hub (tests/hub_server.py): ``submit`` shows what
it sends and prints the case number and PIN once; a lost answer is retried with the same
idempotency key and makes one case; plain http:// to another computer is refused before any
connection; a PIN is never taken from an argument; status and wrong PINs are explained."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading

import pytest

from hub_server import hub, hub_store, submission_body  # noqa: F401  (fixtures)
from ncii_hash._util import http
from ncii_hash.bank import send_feedback
from ncii_hash.cli import main


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ncii_hash", *args], input=stdin, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def submission(tmp_path):
    path = tmp_path / "submission.json"
    path.write_text(json.dumps(submission_body(seed=7, images=3)))
    return path


@pytest.fixture
def no_waits(monkeypatch):
    seen: list = []
    monkeypatch.setattr(http, "pause", seen.append)
    return seen


def test_submit_shows_what_it_sends_then_the_case_number_and_pin_once(hub, submission):  # noqa: F811
    done = cli("submit", str(submission), "--hub", hub.url)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    shown = cli("show", str(submission)).stdout
    assert out.startswith(shown)  # exactly the `show` text, first
    assert out.index("Sending exactly this file") < out.index("case number:")
    case = out.split("case number:")[1].split()[0]
    pin = out.split("PIN:")[1].split()[0]
    assert case.startswith("NC-") and len(pin) == 10
    assert "cannot be recovered" in out and out.count(pin) == 1
    status = cli("case", "status", case, "--hub", hub.url, stdin=pin + "\n")
    assert status.returncode == 0, status.stderr
    assert f"case {case}: active" in status.stdout and "items: 3, hashes: 3" in status.stdout
    assert "partner feedback: none yet" in status.stdout


def test_status_counts_partner_feedback(hub, submission):  # noqa: F811
    opened = json.loads(cli("submit", str(submission), "--hub", hub.url, "--json").stdout)
    keys = ",".join(hub.add_partner("platform"))
    values = [c.tobytes().hex() for c in __import__("ncii_hash").read_submission(submission).hashes]
    assert send_feedback(None, keys, [(values[0], "Blocked", ["reviewed"]), (values[1], "PendingReview", [])]) == 2
    status = cli("case", "status", opened["case_number"], "--hub", hub.url, stdin=opened["pin"])
    assert "partner feedback: Blocked 1, PendingReview 1" in status.stdout, status.stdout


class LossyProxy:
    """Forwards requests to the hub; drops the hub's first answer (the survivor's connection is
    closed without it), as a network that fails after the hub committed."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                request = read_http_message(conn)
                self.requests.append(request)
                with socket.create_connection(("127.0.0.1", self.target_port)) as up:
                    up.sendall(request)
                    answer = b"".join(iter(lambda: up.recv(65536), b""))
                if len(self.requests) > 1:
                    conn.sendall(answer)

    def close(self) -> None:
        self.sock.close()


def read_http_message(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def idempotency_key(request: bytes) -> bytes:
    return next(line for line in request.split(b"\r\n") if line.lower().startswith(b"idempotency-key:"))


def test_a_lost_answer_is_retried_with_the_same_key_and_makes_one_case(hub, submission, no_waits, capsys):  # noqa: F811
    proxy = LossyProxy(int(hub.url.rsplit(":", 1)[1]))
    try:
        assert main(["submit", str(submission), "--hub", proxy.url, "--json"]) == 0
    finally:
        proxy.close()
    opened = json.loads(capsys.readouterr().out)
    assert len(proxy.requests) == 2 and no_waits == [1.0]  # one retry after a backoff
    key = idempotency_key(proxy.requests[0])
    assert key == idempotency_key(proxy.requests[1]) and len(key.split(b":")[1].strip()) >= 43  # 256 bits
    # The hub made one case: the platform's feed holds exactly one, under the number the retry got.
    from ncii_hash import HashBank

    keys = ",".join(hub.add_partner("platform"))
    with HashBank(submission.parent / "bank.db") as bank:
        report = bank.sync(None, keys)
        assert report.cases_added == 1 and bank.case(opened["case_number"]).hashes == 3


def test_plain_http_to_another_computer_is_refused_before_any_connection(submission, monkeypatch, capsys):
    def no_connection(*a, **k):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    monkeypatch.setattr(socket.socket, "connect", no_connection)
    for url in ("http://192.0.2.10:8000", "http://hub.example.org", "ftp://127.0.0.1", "http://127.0.0.1.example.com",
                "https://user:pw@hub.example.org"):
        assert main(["submit", str(submission), "--hub", url]) == 2, url
        err = capsys.readouterr().err
        assert "--hub" in err and "case number" not in err
        assert main(["case", "status", "NC-AAAA-BBBB-CCCC", "--hub", url]) == 2
    assert http.check_base_url("http://127.0.0.5:1/") == "http://127.0.0.5:1"
    assert http.check_base_url("http://[::1]:8000") == "http://[::1]:8000"
    assert http.check_base_url("http://localhost:8000") == "http://localhost:8000"
    assert http.check_base_url("https://hub.example.org/") == "https://hub.example.org"


def test_a_pin_is_never_taken_from_an_argument(hub):  # noqa: F811
    for args in (["--pin", "ABCDEFGHJK"], ["ABCDEFGHJK"], ["--pin=ABCDEFGHJK"]):
        done = cli("case", "withdraw", "NC-AAAA-BBBB-CCCC", *args, "--hub", hub.url)
        assert done.returncode == 2 and "unrecognized arguments" in done.stderr
    done = cli("case", "status", "NC-AAAA-BBBB-CCCC", "--hub", hub.url, stdin="")
    assert done.returncode == 2 and "no PIN" in done.stderr and "never taken as an argument" in done.stderr


def run_main(args: list, stdin: str, monkeypatch, capsys) -> tuple[int, str]:
    """``ncii-hash`` in this process (milliseconds apart, so the hub's backoff is still running)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(args)
    return code, capsys.readouterr().err


def slowed_down(url: str, case: str, monkeypatch, capsys) -> str:
    """Wrong PINs until the hub slows the case down (the 4th at the latest); its message."""
    for _ in range(6):
        code, err = run_main(["case", "withdraw", case, "--hub", url], "ABCDEFGHJK\n", monkeypatch, capsys)
        assert code == 1, err
        if "too many wrong PINs" in err:
            return err
        assert "wrong case number or PIN" in err
    raise AssertionError("wrong PINs were never slowed down")


def test_wrong_pins_and_unknown_cases_are_explained(hub, submission, monkeypatch, capsys):  # noqa: F811
    opened = json.loads(cli("submit", str(submission), "--hub", hub.url, "--json").stdout)
    unknown = cli("case", "withdraw", "NC-0000-0000-0000", "--hub", hub.url, stdin="ABCDEFGHJK")
    assert unknown.returncode == 1 and "wrong case number or PIN. Nothing was changed." in unknown.stderr
    err = slowed_down(hub.url, opened["case_number"], monkeypatch, capsys)
    assert "too many wrong PINs for this case or from this computer; try again in" in err
    assert "second" in err and "Nothing was changed." in err


def test_hub_errors_are_shown_in_plain_words(hub, tmp_path):  # noqa: F811
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**submission_body(seed=1), "version": 99}))
    done = cli("submit", str(bad), "--hub", hub.url)
    assert done.returncode != 0 and "Traceback" not in done.stderr and "version" in done.stderr
    refused = cli("case", "status", "NC-AAAA-BBBB-CCCC", "--hub", "http://127.0.0.1:9", stdin="ABCDEFGHJK\n")
    assert refused.returncode == 1 and "cannot reach http://127.0.0.1:9" in refused.stderr


def test_redirects_are_not_followed(submission, no_waits, capsys):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Redirect(BaseHTTPRequestHandler):  # a stand-in: a correct hub never redirects
        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(307)
            self.send_header("Location", "https://elsewhere.example.org/cases")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        assert main(["submit", str(submission), "--hub", f"http://127.0.0.1:{server.server_address[1]}"]) == 1
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert "redirects to https://elsewhere.example.org/cases" in err and "not followed" in err
