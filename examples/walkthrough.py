#!/usr/bin/env python3
"""The whole flow, end to end, with the `ncii-hash` command:

1. a survivor hashes her photos into a submission, on her own device, and checks what it holds;
2. a platform banks the submission as a case;
3. the platform's uploads (re-encoded, resized and mirrored copies, and an unrelated photo)
   are matched against the bank;
4. the survivor withdraws the case; the same uploads no longer match.

Run from anywhere: python examples/walkthrough.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(*args: str) -> str:
    cmd = [sys.executable, "-m", "ncii_hash", *args]
    print("\n$ ncii-hash " + " ".join(args), flush=True)
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        sys.exit(f"command failed with exit code {done.returncode}")
    return done.stdout


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sub = str(Path(tmp) / "submission.json")
        bank = str(Path(tmp) / "bank.db")
        print("== On the survivor's device (no network) ==")
        run("hash", str(HERE / "survivor"), "-o", sub)
        run("show", sub)
        print("\n== At the platform ==")
        run("bank", "init", bank)
        case_id = run("bank", "add", bank, sub).strip()
        out = run("match", bank, str(HERE / "uploads"))
        if out.count("MATCH") != 3:
            sys.exit("expected the 3 edited copies to match")
        print("\n== The survivor withdraws her case ==")
        run("bank", "withdraw", bank, case_id)
        out = run("match", bank, str(HERE / "uploads"))
        if "MATCH" in out:
            sys.exit("a withdrawn case must never match")
        print("\nDone: matched while banked, gone once withdrawn.")


if __name__ == "__main__":
    main()
