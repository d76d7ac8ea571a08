"""``python -m benchmarks``: discover ``bench_*.py``, run each, print the ratio table.

Exit status: 0 when every benchmark ran (whatever its timings), 1 when one crashed or failed
to import (that is a bug), 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

from . import harness

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    """Names of the benchmarks next to this file (``bench_hash.py`` -> ``hash``), sorted."""
    return sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))


def _crash_result(ctx: harness.Context, exc: BaseException) -> dict:
    error = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result = ctx.to_json(started=started, duration_s=0.0, error=error)
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / f"{ctx.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def run_one(name: str, ctx: harness.Context) -> dict:
    try:
        module = importlib.import_module(f"{__package__}.bench_{name}")
        run = getattr(module, "run")
    except Exception as exc:  # an import error in a bench module is a crash, reported
        return _crash_result(ctx, exc)
    return harness.execute(run, ctx)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    available = discover()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    harness.add_common_args(parser)
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only this benchmark (repeatable; one of: {', '.join(available)})")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(available))
        return 0
    chosen = []
    for item in args.only:
        for name in filter(None, item.split(",")):
            name = name[len("bench_"):] if name.startswith("bench_") else name
            if name not in available:
                parser.error(f"no benchmark named {name!r}; available: {', '.join(available)}")
            chosen.append(name)
    names = chosen or available

    command = " ".join(shlex.quote(a) for a in ["python", "-m", "benchmarks", *argv])
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    results = []
    for name in names:
        print(f"== {name} ({'quick' if args.quick else 'full'}) ==", flush=True)
        ctx = harness.Context(name=name, quick=args.quick, out=args.out, cache=args.cache, command=command)
        result = run_one(name, ctx)
        harness.print_result(result)
        print(f"-> {args.out / (name + '.json')} ({result['duration_s']:.1f} s)\n", flush=True)
        results.append(result)

    summary = {
        "schema": harness.SCHEMA, "kind": "summary", "mode": "quick" if args.quick else "full",
        "command": command, "started": started, "duration_s": round(time.perf_counter() - t0, 3),
        "machine": harness.machine_facts(),
        "benchmarks": [{"name": r["benchmark"], "file": f"{r['benchmark']}.json", "status": r["status"],
                        "duration_s": r["duration_s"]} for r in results],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")

    rows = [row for r in results for row in harness.ratio_rows(r)]
    print("== summary: speed-ups (> 1 means the subject is faster) ==")
    print(harness.format_table(harness.RATIO_HEADER, rows) if rows else "(no ratios)")
    crashed = [r["benchmark"] for r in results if r["status"] == "error"]
    if crashed:
        print(f"\nCRASHED: {', '.join(crashed)} (a bug, not a timing; see the tracebacks above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
