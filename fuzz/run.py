"""Run the fuzz targets one at a time, each for a bounded time, and report executions.

    python fuzz/run.py                       # every target, 300 s each (atheris if installed)
    python fuzz/run.py --targets hex,image --seconds 120
    python fuzz/run.py --smoke               # < 30 s in all: every target briefly (CI)
    python fuzz/run.py --engine mutate       # the seeded fallback mutator, no atheris needed

Each target runs in its own subprocess (atheris takes over the process; a crash of the C++
core must not take the runner down). Corpora grow under ``--out`` (default
``fuzz-out/``), crashing inputs land in ``--out/crashes/``. The exit status is 1 when any
target found something. Install atheris with ``pip install 'ncii-hash[fuzz]'``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ORDER = ("hex", "submission", "bank_csv", "index_load", "vpdq_text", "image", "video")
SMOKE_SECONDS = 2


def _have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------ worker (one target)
def _worker_atheris(target: str, seconds: int, corpus: Path, crashes: Path) -> None:
    import atheris

    include = ["ncii_hash"] + (["PIL"] if target == "image" else [])
    with atheris.instrument_imports(include=include):
        import targets
        import ncii_hash.bank  # noqa: F401
        import ncii_hash.submission  # noqa: F401
        import ncii_hash.image.io  # noqa: F401
        import ncii_hash.index  # noqa: F401
        import ncii_hash.video  # noqa: F401
    fn = targets.TARGETS[target]
    argv = [sys.argv[0], str(corpus), f"-max_total_time={seconds}", "-timeout=20", "-rss_limit_mb=3072",
            "-print_final_stats=1", f"-artifact_prefix={crashes}/{target}-", "-max_len=300000"]
    atheris.Setup(argv, fn)
    atheris.Fuzz()


def _worker_mutate(target: str, seconds: int, corpus: Path, crashes: Path, seed: int) -> None:
    import mutate
    import targets

    stats = mutate.fuzz(targets.TARGETS[target], corpus, seconds=seconds, seed=seed, crashes=crashes, name=target)
    print(f"stat::number_of_executed_units: {stats['executions']}", file=sys.stderr)
    print(f"stat::average_exec_per_sec: {stats['exec_per_sec']:.0f}", file=sys.stderr)
    print(f"stat::findings: {stats['findings']}", file=sys.stderr)
    sys.exit(1 if stats["findings"] else 0)


# ------------------------------------------------------------------ runner
def _run_target(target: str, seconds: int, engine: str, out: Path, seed: int) -> dict:
    import targets

    corpus = out / "corpus" / target
    crashes = out / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    if not corpus.is_dir() or not any(corpus.iterdir()):
        targets.write_seeds(target, corpus)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", target, "--seconds", str(seconds),
           "--engine", engine, "--out", str(out), "--seed", str(seed)]
    start = time.monotonic()
    # Hard bound: the fuzzer's own limit plus start-up; a hung worker is killed.
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=seconds + 120)
        rc, log = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, log = -9, (exc.stderr or b"").decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    elapsed = time.monotonic() - start
    (out / f"{target}.log").write_text(log)
    execs = _last_int(r"stat::number_of_executed_units:\s*(\d+)", log)
    if execs is None:  # killed before the final stats: take libFuzzer's last status line
        execs = _last_int(r"#(\d+)\s+(?:pulse|NEW|REDUCE|DONE|INITED)", log)
    rate = _last_int(r"stat::average_exec_per_sec:\s*(\d+)", log)
    return {
        "target": target, "engine": engine, "seconds": round(elapsed, 1), "executions": execs,
        "exec_per_sec": rate if rate is not None else (round(execs / elapsed) if execs else None),
        "finding": rc != 0, "exit_code": rc,
        "detail": _finding_summary(log) if rc != 0 else "",
    }


def _last_int(pattern: str, text: str):
    found = re.findall(pattern, text)
    return int(found[-1]) if found else None


def _finding_summary(log: str) -> str:
    lines = [ln for ln in log.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "Uncaught Python exception" in ln or "ERROR: libFuzzer" in ln or ln.startswith("FINDING"):
            return "\n".join(lines[i : i + 12])
    return "\n".join(lines[-12:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default=",".join(ORDER), help="comma-separated, from: " + ", ".join(ORDER))
    ap.add_argument("--seconds", type=int, default=300, help="time per target (default 300)")
    ap.add_argument("--smoke", action="store_true", help=f"{SMOKE_SECONDS} s per target, mutate engine unless --engine")
    ap.add_argument("--engine", choices=["auto", "atheris", "mutate"], default="auto")
    ap.add_argument("--out", default="fuzz-out", help="corpora, crashes, logs and results.json")
    ap.add_argument("--seed", type=int, default=20260)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    engine = args.engine
    if engine == "auto":
        engine = "mutate" if args.smoke or not _have_atheris() else "atheris"
    if args.worker:
        corpus, crashes = out / "corpus" / args.worker, out / "crashes"
        if engine == "atheris":
            _worker_atheris(args.worker, args.seconds, corpus, crashes)
        else:
            _worker_mutate(args.worker, args.seconds, corpus, crashes, args.seed)
        return 0
    seconds = SMOKE_SECONDS if args.smoke else args.seconds
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(names) - set(ORDER))
    if unknown:
        ap.error(f"unknown targets {unknown}")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:  # one at a time: the fuzzers share the machine with everything else
        res = _run_target(name, seconds, engine, out, args.seed)
        results.append(res)
        flag = "FINDING" if res["finding"] else "ok"
        print(f"{name:12} {engine:8} {res['seconds']:7.1f} s  {res['executions'] or 0:>10} execs  "
              f"{res['exec_per_sec'] or 0:>7} exec/s  {flag}", flush=True)
        if res["finding"]:
            print(res["detail"], flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(r["finding"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
