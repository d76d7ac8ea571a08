"""Helpers for the matcher tests: a bank (SQLite file or PostgreSQL database) with a running
``ncii-hash matcher serve`` over it (tests/hub_server.py's process runner), HMA's OpenAPI
description as the schema checklist, seeded hashes and test photos."""

from __future__ import annotations

import io
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import httpx
import numpy as np

from hub_server import HubServer, run_cli

#: HMA 2.0's OpenAPI description: $NCII_HASH_HMA_OPENAPI, else ../shared/reference next to the
#: checkout. Without it the contract tests still check every shape they assert; only the schema
#: validation is left out (said once per run as a warning).
OPENAPI = Path(os.environ.get("NCII_HASH_HMA_OPENAPI")
               or Path(__file__).resolve().parents[2] / "shared" / "reference" / "hma-2-openapi.json")
DEADLINE = 1.0  #: seconds a change may take to reach every matcher (issue 17)


def child_pids(pid: int) -> Optional[list[int]]:
    """The child processes of ``pid`` (a ``--workers`` matcher's workers); None where /proc
    does not list a process's children."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return None


def init_bank(target: str) -> None:
    done = run_cli("bank", "init", target)
    assert done.returncode == 0, done.stderr


def start_matcher(bank: str, *extra: str) -> HubServer:
    server = HubServer(bank, service="matcher", extra_args=tuple(extra)).start()
    client = httpx.Client(base_url=server.url, timeout=30)
    deadline = time.monotonic() + 60
    while client.get("/status").status_code != 200:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)
    client.close()
    return server


def bank_target(request: Any, tmp_path_factory: Any) -> str:
    """For a module fixture parametrized by store ("sqlite", "postgresql"): a fresh bank's target."""
    if request.param == "sqlite":
        return str(tmp_path_factory.mktemp("matcher") / "bank.db")
    return request.getfixturevalue("pg_server").create_database()[1]


def served_matcher(target: str) -> Iterator[tuple[httpx.Client, HubServer]]:
    """A new bank at ``target`` and a matcher serving it, as (client, server); stopped afterwards."""
    init_bank(target)
    server = start_matcher(target)
    client = httpx.Client(base_url=server.url, timeout=60)
    try:
        yield client, server
    finally:
        client.close()
        server.close()


def random_hex(rng: np.random.Generator) -> str:
    return bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex()


def flip_bits(hex_value: str, n: int) -> str:
    """``hex_value`` with its first ``n`` bits flipped (a hash at distance ``n``)."""
    b = bytearray(bytes.fromhex(hex_value))
    for i in range(n):
        b[i // 8] ^= 1 << (i % 8)
    return bytes(b).hex()


def photo(seed: int, rotate: int = 0) -> bytes:
    """A smooth 64x64 PNG (PDQ quality 100; at 64x64 the dihedral hashes of a rotated copy
    are exact), optionally rotated by 90 degrees ``rotate`` times."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    pixels = np.rot90(np.asarray(Image.fromarray(small).resize((64, 64), Image.BICUBIC)), rotate).copy()
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def until(check: Callable[[], bool], deadline: float = DEADLINE) -> bool:
    """Poll ``check`` until it holds or ``deadline`` seconds passed (it is tried at least once)."""
    end = time.monotonic() + deadline
    while True:
        if check():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.01)


class OpenApi:
    """HMA 2.0's OpenAPI description: the schema a route's response has for a status."""

    def __init__(self) -> None:
        self.doc: Optional[dict] = json.loads(OPENAPI.read_text()) if OPENAPI.is_file() else None
        if self.doc is None:
            warnings.warn(f"HMA's OpenAPI description not found at {OPENAPI}: schemas not validated", stacklevel=2)

    def schema(self, method: str, path: str, status: int) -> Optional[dict]:
        assert self.doc is not None
        responses = self.doc["paths"][path][method.lower()]["responses"]
        answer = responses.get(str(status)) or next((v for k, v in responses.items() if k.startswith("2")
                                                     and 200 <= status < 300), None)
        schema = (answer or {}).get("content", {}).get("application/json", {}).get("schema")
        return schema or None

    def check(self, method: str, path: str, response: httpx.Response) -> Any:
        """The response's JSON, validated against the schema HMA's description gives it."""
        import jsonschema

        body = response.json()
        if self.doc is None:
            return body
        assert path in self.doc["paths"], path
        schema = self.schema(method, path, response.status_code)
        if schema is not None:
            jsonschema.validate(body, {**schema, "components": self.doc["components"]})
        return body
