"""The one timing harness every ``benchmarks/bench_*.py`` uses.

A bench module is a plain script with two entry points:

* ``run(ctx: Context) -> None`` -- does the work, reports through ``ctx``;
* ``main(argv=None) -> int`` -- ``return harness.main(run, NAME, argv)``, so the module also
  runs on its own (``python -m benchmarks.bench_hash --quick``).

``python -m benchmarks`` discovers every ``bench_*.py`` next to this file and calls ``run``.

Inside ``run`` a benchmark:

1. imports each peer with ``ctx.peer("pdqhash")``: a missing peer returns ``None`` and is
   reported as skipped (never a failure), so peers are never imported at module top level;
2. times with ``ctx.compare(name, {"ncii_hash": f, "pdqhash": g}, items=n)``: every callable
   is warmed up, then timed once per round, round-robin and in a rotating order, so machine
   drift (other jobs, turbo, thermal) hits all of them alike; each returns :class:`Stats`;
3. states what it compares with ``ctx.ratio(name, subject, baseline, target=...)`` (speed-up
   = baseline time / subject time, with the spread of the per-round ratios), and what it
   verified with ``ctx.check(name, ok, **detail)``;
4. optionally draws a picture with ``ctx.plot_bars(...)`` (matplotlib, Agg backend).

The runner writes one JSON file per benchmark, ``<out>/<name>.json``, in the schema below,
plus ``<out>/summary.json`` listing them. Schema ``ncii_hash-bench/1``::

    schema       "ncii_hash-bench/1"
    benchmark    name (module name without "bench_")
    mode         "quick" | "full"
    command      the command line that produced the file
    started      ISO 8601 UTC;  duration_s: wall time of the whole benchmark
    status       "ok" | "error"
    error        null | {type, message, traceback}
    machine      see machine_facts(): cpu, cores, ram_gb, simd, load_avg (at the end) and
                 load_avg_start (1/5/15-minute), python, versions...
    config       free-form parameters the benchmark chose (sizes, repeats, seeds, files)
    measurements [{name, subject, unit: "s", per, items, stats: {median, q1, q3, iqr, min,
                   max, mean, n}, per_item_s, throughput_per_s, samples}]   (times per call)
    ratios       [{name, subject, baseline, speedup, spread: [q1, q3] of per-round ratios,
                   target | null, met | null, status: "ok" | "skipped", reason | null}]
    checks       [{name, ok, detail}]          e.g. bit-exactness against a peer
    skipped      [{peer, reason}]              peers that are not installed
    notes        [str]                         anything a reader must know
    plots        [file names, relative to the JSON file]

No timing is ever an error: a missed target is ``met: false`` in the data, nothing more.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.metadata
import json
import os
import platform
import shlex
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

SCHEMA = "ncii_hash-bench/1"
DEFAULT_OUT = "bench-results"
DEFAULT_CACHE = Path(os.environ.get("NCII_HASH_BENCH_CACHE", Path.home() / ".cache" / "ncii_hash-bench"))

#: Distributions whose versions go into every result file (missing ones are recorded as null).
VERSIONED = ("ncii-hash", "numpy", "pillow", "pillow-heif", "pdqhash", "faiss-cpu", "imagehash",
             "scikit-image", "matplotlib")


# --------------------------------------------------------------------------------------------
# statistics


@dataclass(frozen=True)
class Stats:
    """Summary of repeated timings, in seconds per call."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    mean: float
    n: int

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def as_dict(self) -> dict:
        d = asdict(self)
        d["iqr"] = self.iqr
        return d


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of already sorted values (NumPy's default method)."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples: Sequence[float]) -> Stats:
    s = sorted(float(x) for x in samples)
    return Stats(median=quantile(s, 0.5), q1=quantile(s, 0.25), q3=quantile(s, 0.75),
                 min=s[0], max=s[-1], mean=sum(s) / len(s), n=len(s))


def speedup(baseline: Sequence[float], subject: Sequence[float]) -> tuple[float, list[float]]:
    """Speed-up of ``subject`` over ``baseline`` (> 1: subject is faster).

    The headline is the ratio of the medians; the spread is the interquartile range of the
    per-round ratios (round i of both was timed back to back, so the pairing cancels drift).
    """
    if not baseline or not subject:
        raise ValueError("speedup needs samples on both sides")
    head = summarize(baseline).median / summarize(subject).median
    paired = sorted(b / s for b, s in zip(baseline, subject))
    return head, [quantile(paired, 0.25), quantile(paired, 0.75)]


# --------------------------------------------------------------------------------------------
# machine facts


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_simd_flags() -> list[str]:
    wanted = {"sse4_2", "popcnt", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
              "avx512dq", "avx512_vpopcntdq", "avx512_vnni", "neon", "asimd"}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return sorted(wanted & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


def _ram_gb() -> Optional[float]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)
    except (ValueError, OSError, AttributeError):
        return None


def package_version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_facts() -> dict:
    """What a reader needs to judge the numbers: hardware, load, SIMD in use, versions."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    facts: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_simd_flags": _cpu_simd_flags(),
        "cores_logical": os.cpu_count(),
        "cores_usable": usable,
        "ram_gb": _ram_gb(),
        "load_avg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "versions": {d: package_version(d) for d in VERSIONED},
        "env": {k: os.environ[k] for k in ("NCII_HASH_SIMD", "OMP_NUM_THREADS") if k in os.environ},
    }
    try:
        from ncii_hash import _core

        facts["simd"] = {"active": _core.simd_level(), "detected": _core.detected_simd_level()}
    except Exception as exc:  # the report must still say why
        facts["simd"] = {"error": f"{type(exc).__name__}: {exc}"}
    return facts


# --------------------------------------------------------------------------------------------
# timing


def time_call(fn: Callable[[], object]) -> float:
    """Seconds for one call, with the garbage collector held off during it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        if was_enabled:
            gc.enable()


def interleaved(cases: Mapping[str, Callable[[], object]], *, repeats: int, warmup: int = 1
                ) -> dict[str, list[float]]:
    """Time every case once per round for ``repeats`` rounds, after ``warmup`` untimed rounds.

    Rounds are round-robin and the starting case rotates each round, so no case always runs
    first (cold caches) or last, and a slow stretch of the machine hits every case.
    Returns the raw seconds per call, per case, in round order.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            samples[name].append(time_call(cases[name]))
    return samples


# --------------------------------------------------------------------------------------------
# the context a benchmark reports through


@dataclass
class Context:
    """Everything a benchmark needs, and everything it reports (becomes the JSON file)."""

    name: str
    quick: bool = False
    out: Path = Path(DEFAULT_OUT)
    cache: Path = DEFAULT_CACHE
    seed: int = 20240611
    command: str = ""
    config: dict = field(default_factory=dict)
    measurements: list = field(default_factory=list)
    ratios: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    plots: list = field(default_factory=list)
    _samples: dict = field(default_factory=dict, repr=False)

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"

    def pick(self, quick: Any, full: Any) -> Any:
        """The quick-mode or full-mode value of a parameter."""
        return quick if self.quick else full

    # -- peers --------------------------------------------------------------------------------
    def peer(self, module: str, *, dist: Optional[str] = None) -> Any:
        """Import an optional peer; ``None`` (and a ``skipped`` entry) when it is missing."""
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            reason = f"not installed ({exc}); pip install {dist or module}"
            if not any(s["peer"] == module for s in self.skipped):
                self.skipped.append({"peer": module, "reason": reason})
            return None

    # -- timing -------------------------------------------------------------------------------
    def compare(self, name: str, cases: Mapping[str, Optional[Callable[[], object]]], *,
                items: int = 1, per: str = "image", repeats: Optional[int] = None,
                warmup: int = 1) -> dict[str, Stats]:
        """Time ``cases`` (subject -> callable; ``None`` = skipped peer) interleaved.

        Each call processes ``items`` items; per-item time and throughput are derived.
        ``repeats`` defaults to 5 in quick mode and 15 in full mode.
        """
        live = {k: v for k, v in cases.items() if v is not None}
        reps = repeats if repeats is not None else self.pick(5, 15)
        raw = interleaved(live, repeats=reps, warmup=warmup)
        result = {}
        for subject, samples in raw.items():
            st = summarize(samples)
            self._samples[(name, subject)] = samples
            self.measurements.append({
                "name": name, "subject": subject, "unit": "s", "per": per, "items": items,
                "stats": st.as_dict(), "per_item_s": st.median / items,
                "throughput_per_s": items / st.median if st.median > 0 else None,
                "samples": samples,
            })
            result[subject] = st
        return result

    def ratio(self, name: str, subject: str, baseline: str, *, target: Optional[float] = None,
              label: Optional[str] = None) -> Optional[float]:
        """Record the speed-up of ``subject`` over ``baseline`` for measurement ``name``.

        A side that was not measured (a skipped peer) gives a ``skipped`` entry, not an error.
        """
        a = self._samples.get((name, baseline))
        b = self._samples.get((name, subject))
        entry: dict[str, Any] = {"name": label or name, "measurement": name, "subject": subject,
                                 "baseline": baseline, "speedup": None, "spread": None,
                                 "target": target, "met": None, "status": "ok", "reason": None}
        if a is None or b is None:
            missing = baseline if a is None else subject
            entry["status"] = "skipped"
            entry["reason"] = self._why_unmeasured(missing)
            self.ratios.append(entry)
            return None
        value, spread = speedup(a, b)
        entry.update(speedup=value, spread=spread,
                     met=None if target is None else bool(value >= target))
        self.ratios.append(entry)
        return value

    def _why_unmeasured(self, subject: str) -> str:
        for s in self.skipped:
            if s["peer"] == subject:
                return s["reason"]
        if self.skipped:  # the subject is named differently from the module it needs
            return f"{subject} not measured: " + "; ".join(f"{s['peer']} {s['reason']}" for s in self.skipped)
        return f"{subject} was not measured"

    def check(self, name: str, ok: bool, **detail: Any) -> bool:
        """Record a correctness check (e.g. bit-exactness against a peer)."""
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        return bool(ok)

    def note(self, text: str) -> None:
        self.notes.append(text)

    # -- plots --------------------------------------------------------------------------------
    def plot_bars(self, filename: str, title: str, groups: Sequence[str],
                  series: Mapping[str, Sequence[Optional[float]]], *, ylabel: str,
                  log: bool = False) -> Optional[str]:
        """Grouped bar chart (one group per x label, one bar per series). ``None`` values are
        left out. Returns the file name, or ``None`` when matplotlib is missing."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            self.note(f"plot {filename} not drawn: matplotlib is not installed")
            return None
        width = 0.8 / max(1, len(series))
        fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) + 2), 4.0))
        for k, (label, values) in enumerate(series.items()):
            xs = [i + (k - (len(series) - 1) / 2) * width for i, v in enumerate(values) if v is not None]
            ys = [v for v in values if v is not None]
            ax.bar(xs, ys, width, label=label)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.set_title(f"{title} ({self.mode} run)")
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        self.out.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.out / filename, dpi=110)
        plt.close(fig)
        self.plots.append(filename)
        return filename

    # -- output -------------------------------------------------------------------------------
    def to_json(self, *, started: str, duration_s: float, error: Optional[dict]) -> dict:
        return {
            "schema": SCHEMA, "benchmark": self.name, "mode": self.mode, "command": self.command,
            "started": started, "duration_s": round(duration_s, 3),
            "status": "error" if error else "ok", "error": error,
            "machine": machine_facts(), "config": self.config,
            "measurements": self.measurements, "ratios": self.ratios, "checks": self.checks,
            "skipped": self.skipped, "notes": self.notes, "plots": self.plots,
        }


def execute(run: Callable[[Context], None], ctx: Context) -> dict:
    """Run one benchmark, catching a crash into the result, and write ``<out>/<name>.json``."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_start = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    t0 = time.perf_counter()
    error = None
    try:
        run(ctx)
    except Exception as exc:  # a crash is a bug to report, not a reason to lose the rest
        error = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    result = ctx.to_json(started=started, duration_s=time.perf_counter() - t0, error=error)
    result["machine"]["load_avg_start"] = load_start  # other jobs on the machine skew timings
    ctx.out.mkdir(parents=True, exist_ok=True)
    path = ctx.out / f"{ctx.name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, default=_json_default) + "\n")
    tmp.replace(path)
    return result


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


# --------------------------------------------------------------------------------------------
# printing


def _fmt_time(s: Optional[float]) -> str:
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def ratio_rows(result: Mapping) -> list[list[str]]:
    """Table rows (benchmark, what, subject vs baseline, times per item, speed-up, target)."""
    per_item = {(m["name"], m["subject"]): m["per_item_s"] for m in result.get("measurements", [])}
    rows = []
    for r in result.get("ratios", []):
        if r["status"] != "ok":
            reason = r.get("reason") or ""
            rows.append([result["benchmark"], r["name"], f"{r['subject']} vs {r['baseline']}",
                         "-", "-", "skipped", reason if len(reason) <= 60 else reason[:57] + "..."])
            continue
        lo, hi = r["spread"]
        target = "" if r["target"] is None else (
            f">= {r['target']:g}x " + ("met" if r["met"] else "MISSED"))
        rows.append([
            result["benchmark"], r["name"], f"{r['subject']} vs {r['baseline']}",
            _fmt_time(per_item.get((r["measurement"], r["subject"]))),
            _fmt_time(per_item.get((r["measurement"], r["baseline"]))),
            f"{r['speedup']:.2f}x [{lo:.2f}-{hi:.2f}]", target,
        ])
    return rows


RATIO_HEADER = ["bench", "measurement", "subject vs baseline", "subject/item", "baseline/item",
                "speed-up [IQR]", "target"]


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def print_result(result: Mapping, stream=None) -> None:
    stream = sys.stdout if stream is None else stream
    name = result["benchmark"]
    if result["status"] == "error":
        err = result["error"]
        print(f"\n[{name}] CRASHED: {err['type']}: {err['message']}\n{err['traceback']}", file=stream)
    rows = ratio_rows(result)
    if rows:
        print(format_table(RATIO_HEADER, rows), file=stream)
    for c in result.get("checks", []):
        print(f"[{name}] check {c['name']}: {'ok' if c['ok'] else 'FAILED'} {_short(c['detail'])}", file=stream)
    for s in result.get("skipped", []):
        print(f"[{name}] skipped peer {s['peer']}: {s['reason']}", file=stream)
    for n in result.get("notes", []):
        print(f"[{name}] note: {n}", file=stream)


def _short(detail: Mapping) -> str:
    text = json.dumps(detail, default=_json_default)
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------------------------
# command line, shared by the runner and by each bench module run on its own


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats (CI); default is the full sizes")
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT),
                        help=f"directory for the JSON results and plots (default {DEFAULT_OUT}/)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="directory for generated inputs (default %(default)s)")


def context_from_args(name: str, args: argparse.Namespace, argv: Sequence[str]) -> Context:
    return Context(name=name, quick=args.quick, out=args.out, cache=args.cache,
                   command=" ".join(shlex.quote(a) for a in argv))


def main(run: Callable[[Context], None], name: str, argv: Optional[Sequence[str]] = None) -> int:
    """Entry point for a bench module run on its own. Exit 1 only if it crashed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.bench_{name}")
    add_common_args(parser)
    args = parser.parse_args(argv)
    ctx = context_from_args(name, args, ["python", "-m", f"benchmarks.bench_{name}", *argv])
    result = execute(run, ctx)
    print_result(result)
    return 1 if result["status"] == "error" else 0
