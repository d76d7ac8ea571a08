"""Shared pieces of the pytx-extension tests: sample images and a recorded StopNCII feed served
on 127.0.0.1 (pages shaped like StopNCII's partner API, as python-threatexchange parses them)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlparse

DATA = Path(__file__).resolve().parent / "data" / "pdq" / "data"


def sample_image() -> Path:
    """A real photo whose PDQ hash (quality 100) is one of pytx's PdqSignal examples."""
    return DATA / "bridge-mods" / "square-128x128.jpg"


def feed_image() -> Path:
    """A real photo (quality 100) that is in no sample set: it reaches an index only by a feed."""
    return DATA / "reg-test-input" / "labelme-subset" / "q0122.jpg"


def low_quality_image() -> Path:
    return DATA / "misc-images" / "small.jpg"


T0 = 1_700_000_000  #: StopNCII positions are Unix times


def record(value: str, status: str = "Active", cases: Optional[dict] = None, *, signal: str = "ImagePDQ",
           feedbacks: Optional[list] = None, modified: int = T0) -> dict:
    return {
        "lastModtimestamp": modified, "signalType": signal, "hashValue": value, "hashStatus": status,
        "caseNumbers": cases if cases is not None else {}, "CSPFeedbacks": feedbacks or [],
    }


def page(records: list, next_position: int, token: Optional[str] = None) -> dict:
    return {"count": len(records), "nextPageToken": token, "nextSetTimestamp": next_position,
            "hasMoreRecords": token is not None, "hashRecords": records}


class FeedServer:
    """Serves recorded ``FetchHashes`` pages keyed by (startTimestamp, nextPageToken) and
    records ``SubmitFeedback`` bodies (header names lower-cased). ``pages`` may be replaced between fetches."""

    def __init__(self, pages: dict[tuple[int, Optional[str]], Any]) -> None:
        self.pages = pages
        self.feedback: list[tuple[dict, dict]] = []  #: (headers, body) of each SubmitFeedback
        self.fetch_headers: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                if url.path != "/v1/FetchHashes":
                    return self._send(404, {"message": "no such route"})
                q = parse_qs(url.query)
                server.fetch_headers.append({k.lower(): v for k, v in self.headers.items()})
                key = (int(q["startTimestamp"][0]), q.get("nextPageToken", [None])[0])
                answer = server.pages.get(key)
                if answer is None:
                    return self._send(400, {"message": f"no recorded page for {key}"})
                if isinstance(answer, int):  # a recorded error status
                    return self._send(answer, {"message": "token expired"})
                return self._send(200, answer)

            def do_POST(self) -> None:  # noqa: N802
                if urlparse(self.path).path != "/v1/SubmitFeedback":
                    return self._send(404, {"message": "no such route"})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.feedback.append(({k.lower(): v for k, v in self.headers.items()}, body))
                return self._send(200, {"count": len(body.get("hashFeedbacks", []))})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "FeedServer":
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
