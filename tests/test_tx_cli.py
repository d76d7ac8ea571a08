"""The real pytx CLI (``python -m threatexchange``) with our extension added, run as a subprocess
with a temporary HOME: ``config extensions add ncii_hash.tx``, ``hash`` and ``match`` on real
photos, and ``fetch`` from a recorded StopNCII feed on 127.0.0.1 through NciiStopNCIIExchange,
where the record of a banked photo turns Withdrawn and the photo stops matching."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("threatexchange", reason="the pytx extension needs threatexchange (pip install "
                    "'ncii-hash[threatexchange]')")

from tx_helpers import T0, FeedServer, feed_image, low_quality_image, page, record, sample_image  # noqa: E402

from ncii_hash.image import pdq_hash  # noqa: E402

SAMPLE_HEX = "d8f8f1eec0f4a84f0e37022a078f63f0b36e2ed596621e1d33e6239c4e9c9b22"  # one of pytx's examples


class Cli:
    def __init__(self, home: Path, env: dict) -> None:
        self.env = {**os.environ, "HOME": str(home), **env}
        self.env.pop("TX_ACCESS_TOKEN", None)

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "threatexchange", *args], env=self.env, capture_output=True,
                              text=True, timeout=120)
        if ok:
            assert done.returncode == 0, f"threatexchange {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done


def lines(text: str, prefix: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(prefix)]


def test_extension_hash_match_and_a_withdrawal_through_the_cli(tmp_path: Path) -> None:
    banked = pdq_hash(feed_image())
    assert banked.quality >= 50
    # A second hash stays active: pytx's CLI (1.2.17) never deletes the index file of a signal
    # type left with no signals (CliIndexStore.clear compares paths with names), so a feed
    # whose last hash is withdrawn would keep matching through the stale file.
    other = "6227401f601ff4ccafcc9fad4b0d95d371a2eb7265a3285234d228ca94deeb2d"
    delta1 = {(10, None): page([record(banked.hex, cases={"CASE-7": "Active"}),
                                record(other, cases={"CASE-8": "Active"})], T0 + 100)}
    delta2 = {(T0 + 100, None): page([record(banked.hex, "Withdrawn", {"CASE-7": "Withdrawn"})], T0 + 200),
              (T0 + 200, None): page([], T0 + 200)}
    with FeedServer(delta1) as server:
        cli = Cli(tmp_path, {"TX_STOPNCII_KEYS": f"fetch-key,sub-key,{server.url}"})

        added = cli("config", "extensions", "add", "ncii_hash.tx").stdout
        assert "ncii_pdq - NciiPdqNamedSignal" in added and "ncii_stop_ncii - NciiStopNCIIExchange" in added
        assert "ncii_hash.tx" in cli("config", "extensions", "list").stdout

        hashed = cli("hash", "photo", str(sample_image())).stdout
        assert lines(hashed, "ncii_pdq ") == [f"ncii_pdq {SAMPLE_HEX}"]
        assert lines(hashed, "pdq ") == [f"pdq {SAMPLE_HEX}"]  # pytx's own hasher agrees
        assert lines(cli("hash", "photo", str(low_quality_image())).stdout, "ncii_pdq") == []  # quality < 50

        # No collaboration yet: the CLI matches against pytx's sample signals.
        matched = cli("match", "photo", str(sample_image())).stdout
        assert lines(matched, "ncii_pdq ")[0].startswith("ncii_pdq 0 (Sample Signals)")

        cli("config", "collab", "edit", "ncii_stop_ncii", "NCII_FEED", "--create")
        cli("fetch")
        matched = cli("match", "photo", str(feed_image())).stdout
        ours = lines(matched, "ncii_pdq ")
        assert len(ours) == 1 and ours[0].startswith("ncii_pdq 0 (NCII_FEED) INVESTIGATION_SEED")
        assert "CASE-7" not in matched
        assert lines(matched, "pdq ") == []  # filed under our signal type, not pytx's pdq
        assert all(h["x-functions-key"] == "fetch-key" for h in server.fetch_headers)

        server.pages = delta2  # the survivor withdraws her case
        cli("fetch")
        matched = cli("match", "photo", str(feed_image())).stdout
        assert lines(matched, "ncii_pdq ") == []
        still = cli("match", "--hashes", "--only-signal", "ncii_pdq", "photo", "--", other).stdout
        assert lines(still, "ncii_pdq ")[0].startswith("ncii_pdq 0 (NCII_FEED)")  # the index was rebuilt


def test_a_missing_extension_module_is_refused(tmp_path: Path) -> None:
    cli = Cli(tmp_path, {})
    done = cli("config", "extensions", "add", "ncii_hash.no_such_module", ok=False)
    assert done.returncode != 0 and "No such module" in (done.stdout + done.stderr)
