"""Catalogue backfill on Ray Data: match a platform's whole catalogue of hashes against a
bank, as a resumable job (numbered partitions, one atomic owner-only Parquet part each;
a rerun skips the parts that exist), against a bank, an index or a :class:`~.sharded.ShardedIndex`."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..hashes import PDQ_HASH_BYTES, PDQ_MATCH_THRESHOLD, from_hex
from .._util.files import write_private_bytes
from .sharded import ShardedIndex, import_ray
from ..index import HashIndex, check_int

PathLike = Union[str, "os.PathLike[str]"]

PART_NAME = "part-{:06d}.parquet"
BACKFILL_MANIFEST = "_backfill.json"


@dataclass(frozen=True)
class BackfillReport:
    """What one :func:`backfill` call did."""

    out: Path
    partitions: int  #: catalogue partitions in total
    skipped: int  #: partitions whose output already existed (done by an earlier run)
    processed: int  #: partitions matched by this run
    rows: int  #: catalogue rows read by this run
    invalid_rows: int  #: rows of this run without a valid hash (null, wrong length, bad hex)
    matches: int  #: match rows written by this run


def backfill(
    catalogue: Union[PathLike, Sequence[PathLike]],
    bank: Any,
    out: PathLike,
    *,
    radius: int = PDQ_MATCH_THRESHOLD,
    rows_per_partition: int = 65536,
    concurrency: int = 1,
    num_cpus: float = 1,
    threads: Optional[int] = None,
) -> BackfillReport:
    """Match a platform's catalogue against a bank with a Ray Data job; resumable.

    ``catalogue``: a Parquet file, a folder of them (``*.parquet``, sorted by path) or a list,
    with columns ``id`` (int64) and ``hash`` (32-byte binary or 64-char hex). ``bank``: a
    HashBank file path (or open ``HashBank``), a ``HashIndex`` or a ``ShardedIndex``.
    ``out``: folder for ``part-NNNNNN.parquet`` files with columns ``catalogue_id`` (int64),
    ``hash_id`` (int64), ``distance`` (int32), plus ``case_id`` (string) for a bank; one file
    per catalogue partition (``rows_per_partition`` consecutive rows of one file), written
    owner-only and atomically (temporary file, fsync, rename), empty when nothing matched.

    Resuming: partitions whose file exists are skipped, so rerunning after an interruption
    finishes the job. ``out/_backfill.json`` records the catalogue files, their sizes, the
    radius and the partitioning; a rerun with a different catalogue or settings is refused.
    Each partition reflects the bank as it was when that partition ran.

    ``concurrency`` matcher actors, each reserving ``num_cpus`` CPUs and searching with
    ``threads`` threads (default: the CPUs it reserved, at least 1), each holding the bank once.
    """
    ray = import_ray()
    import pyarrow.parquet as pq

    radius = check_int(radius, "radius", 0, 8 * PDQ_HASH_BYTES)
    rows_per_partition = check_int(rows_per_partition, "rows_per_partition", 1)
    concurrency = check_int(concurrency, "concurrency", 1)
    threads = check_int(threads, "threads", 0) if threads is not None else max(1, int(num_cpus))
    files = _catalogue_files(catalogue)
    parts, described = [], []
    for f in files:
        try:
            meta = pq.ParquetFile(f)
        except Exception as exc:
            raise ValueError(f"{f}: not a readable Parquet file ({exc})") from None
        names = set(meta.schema_arrow.names)
        if not {"id", "hash"} <= names:
            raise ValueError(f"{f}: a catalogue needs columns 'id' (int64) and 'hash' (32-byte binary or hex); has {sorted(names)}")
        n = meta.metadata.num_rows
        described.append({"path": str(f), "bytes": f.stat().st_size, "rows": n})
        for start in range(0, n, rows_per_partition):
            parts.append({"part": len(parts), "file": str(f), "start": start, "stop": min(n, start + rows_per_partition)})

    out = Path(out)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    job = {"format": 1, "catalogue": described, "rows_per_partition": rows_per_partition, "radius": radius}
    manifest = out / BACKFILL_MANIFEST
    if manifest.exists():
        if json.loads(manifest.read_text()) != job:
            raise ValueError(f"{out} holds a backfill of another catalogue or with other settings ({manifest}); use a new folder")
    else:
        write_private_bytes(manifest, json.dumps(job, indent=1).encode())

    todo = [p for p in parts if not (out / PART_NAME.format(p["part"])).exists()]
    rows = invalid = matches = 0
    if todo:
        spec = _bank_spec(bank, ray)
        ds = ray.data.from_items(todo, override_num_blocks=len(todo)).map_batches(
            _CatalogueMatcher,
            fn_constructor_kwargs={"spec": spec, "radius": radius, "out": str(out), "threads": threads},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=concurrency),
            num_cpus=num_cpus,
        )
        for row in ds.take_all():
            rows, invalid, matches = rows + int(row["rows"]), invalid + int(row["invalid"]), matches + int(row["matches"])
    return BackfillReport(out, len(parts), len(parts) - len(todo), len(todo), rows, invalid, matches)


def _catalogue_files(catalogue: Any) -> list[Path]:
    items = [catalogue] if isinstance(catalogue, (str, os.PathLike)) else list(catalogue)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(x for x in p.rglob("*.parquet") if not x.name.startswith((".", "_")))
            if not found:
                raise FileNotFoundError(f"catalogue folder {p} holds no .parquet files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"no catalogue file or folder at {p}")
    return files


def _bank_spec(bank: Any, ray: Any) -> tuple:
    from ..bank import HashBank

    if isinstance(bank, HashBank):
        bank = bank.path
    if isinstance(bank, (str, os.PathLike)):
        if not Path(bank).is_file():
            raise FileNotFoundError(f"no hash bank at {bank}")
        return ("bank", str(Path(bank).resolve()))
    if isinstance(bank, ShardedIndex):
        return ("sharded", bank)
    if isinstance(bank, HashIndex):
        with tempfile.TemporaryDirectory(prefix="ncii-backfill-") as tmp:  # 0700
            path = Path(tmp) / "bank.idx"
            bank.save(path)
            return ("index", ray.put(path.read_bytes()))  # one copy in the object store for every matcher
    raise TypeError(f"bank must be a HashBank path, HashBank, HashIndex or ShardedIndex; got {type(bank).__name__}")


def _read_hashes(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """(codes (M, 32), valid mask (N,)) from a binary or hex string column; bad rows masked."""
    import pyarrow as pa

    values = column.to_pylist()
    valid = np.zeros(len(values), dtype=bool)
    codes = np.zeros((len(values), PDQ_HASH_BYTES), dtype=np.uint8)
    text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            raw = from_hex(v) if text else np.frombuffer(v, dtype=np.uint8)
        except ValueError:
            continue
        if raw.shape == (PDQ_HASH_BYTES,):
            codes[i], valid[i] = raw, True
    return codes[valid], valid


def _read_rows(path: str, start: int, stop: int) -> Any:
    """Rows [start, stop) of a Parquet file, reading only the row groups they touch."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    groups, offset, first = [], 0, None
    for g in range(f.metadata.num_row_groups):
        n = f.metadata.row_group(g).num_rows
        if offset + n > start and offset < stop:
            groups.append(g)
            first = offset if first is None else first
        offset += n
    table = f.read_row_groups(groups, columns=["id", "hash"])
    return table.slice(start - (first or 0), stop - start)


class _CatalogueMatcher:
    """Ray Data actor: holds the bank once, matches one catalogue partition per row."""

    def __init__(self, spec: tuple, radius: int, out: str, threads: int) -> None:
        kind, value = spec
        self.kind, self.radius, self.out, self.threads = kind, radius, Path(out), threads
        if kind == "bank":
            from ..bank import HashBank

            self.bank = HashBank(value, create=False)
        elif kind == "index":
            with tempfile.TemporaryDirectory(prefix="ncii-backfill-") as tmp:
                path = Path(tmp) / "bank.idx"
                write_private_bytes(path, import_ray().get(value) if not isinstance(value, bytes) else value)
                self.bank = HashIndex.load(path, mmap=False)
        else:
            self.bank = value

    def __call__(self, batch: dict) -> dict:
        stats: dict[str, list] = {"part": [], "rows": [], "invalid": [], "matches": []}
        for part, file, start, stop in zip(batch["part"], batch["file"], batch["start"], batch["stop"]):
            n_rows, n_invalid, n_matches = self._partition(int(part), str(file), int(start), int(stop))
            for key, v in zip(stats, (int(part), n_rows, n_invalid, n_matches)):
                stats[key].append(v)
        return {k: np.asarray(v, dtype=np.int64) for k, v in stats.items()}

    def _partition(self, part: int, file: str, start: int, stop: int) -> tuple[int, int, int]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = _read_rows(file, start, stop)
        codes, valid = _read_hashes(table.column("hash"))
        cat_ids = table.column("id").to_numpy(zero_copy_only=False).astype(np.int64)[valid]
        columns: dict[str, Any]
        if self.kind == "bank":
            found = self.bank.match(codes, self.radius, dihedral=False, threads=self.threads) if codes.size else []
            columns = {
                "catalogue_id": pa.array(cat_ids[[m.query for m in found]] if found else [], pa.int64()),
                "case_id": pa.array([m.case_id for m in found], pa.string()),
                "hash_id": pa.array([m.hash_id for m in found], pa.int64()),
                "distance": pa.array([m.distance for m in found], pa.int32()),
            }
        else:
            if isinstance(self.bank, ShardedIndex):
                res = self.bank.range_search(codes, self.radius)
            else:
                res = self.bank.range_search(codes, self.radius, threads=self.threads)
            columns = {
                "catalogue_id": pa.array(np.repeat(cat_ids, np.diff(res.lims)), pa.int64()),
                "hash_id": pa.array(res.ids, pa.int64()),
                "distance": pa.array(res.distances, pa.int32()),
            }
        result = pa.table(columns)
        sink = pa.BufferOutputStream()
        pq.write_table(result, sink)
        write_private_bytes(self.out / PART_NAME.format(part), sink.getvalue().to_pybytes())
        return int(table.num_rows), int((~valid).sum()), int(result.num_rows)

    def __del__(self) -> None:
        if self.kind == "bank" and getattr(self, "bank", None) is not None:
            self.bank.close(save_snapshot=False)
