"""Scale-out on Ray: a sharded exact index (:class:`ShardedIndex`) and a resumable catalogue
backfill (:func:`backfill`). Optional: ``pip install 'ncii-hash[distributed]'``.

Contracts and invariants:

* **Routing.** Id ``i`` lives on shard ``shard_of(i, K) = splitmix64(i mod 2**64) mod K``
  (the splitmix64 finaliser: ``z ^= z >> 30; z *= 0xbf58476d1ce4e5b9; z ^= z >> 27;
  z *= 0x94d049bb133111eb; z ^= z >> 31``, after adding ``0x9e3779b97f4a7c15``). It is stable
  across processes, machines and Python versions (never the salted ``hash()``), and spreads
  sequential ids evenly. ``K`` is fixed when a snapshot folder is created and checked on reopen.
* **Exactness.** Every id is on exactly one shard, so the union of the shards' range hits is
  the single index's answer; the merge re-sorts each query's hits by (distance, id), which is
  ``HashIndex``'s order, so the CSR arrays are identical to one ``HashIndex`` over the same data
  (dihedral: each (query, id) pair comes from its one shard with its smallest distance and
  lowest variant, as in ``HashIndex``).
* **Failures.** A call that meets a dead shard actor restarts it (from its snapshot plus
  write-ahead log) and retries that shard, at most ``max_retries`` times; then it raises
  :class:`ShardUnavailableError`. A search never returns a partial answer.
* **Durability.** Each shard appends every mutation to its write-ahead log and fsyncs it
  before the call returns; it folds the log into an atomic ``HashIndex.save`` snapshot when the
  log outgrows ``wal_bytes``. A mutation that returned survives the death of its actor (or of
  the whole cluster) as long as ``snapshot_dir`` survives; one that raised may or may not have
  been applied. ``snapshot_dir`` must be reachable from every node that may host a shard (a
  shared file system); the default, a private temporary folder, only suits one machine and is
  deleted by :meth:`ShardedIndex.close`. The bank is sensitive data: all files are 0600.
* **Writers.** One ShardedIndex object serialises its own mutations. Several drivers mutating
  the same shards at once are not supported (searches from anywhere are fine).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from ..errors import ShardUnavailableError
from .._util.files import write_private_bytes
from .._util.optional import optional_import
from ..hashes import PDQ_HASH_BYTES, PDQ_MATCH_THRESHOLD, as_hash_array
from ..index import DEFAULT_BACKEND, RangeResult, as_id_array, as_queries, check_int, merge_hits
from .shard import Shard

PathLike = Union[str, "os.PathLike[str]"]

ROUTING = "splitmix64-v1"
MANIFEST = "sharded-index.json"
_DEFAULT_WAL_BYTES = 64 << 20


def import_ray() -> Any:
    return optional_import("ray", extra="distributed", purpose="scale-out on Ray", package="Ray")


# ------------------------------------------------------------------------------------ routing
def shard_of(ids: object, shards: int) -> np.ndarray:
    """Shard number (int64) of each id under the documented splitmix64 routing."""
    shards = check_int(shards, "shards", 1)
    z = as_id_array(ids).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(shards)).astype(np.int64)


def merge_range_results(parts: Sequence[tuple], nq: int, dihedral: bool) -> RangeResult:
    """Merge per-shard CSR results ``(lims, ids, distances, variants)`` over disjoint id sets
    into one result ordered like ``HashIndex`` (per query by distance, then id)."""
    q = np.concatenate([np.repeat(np.arange(nq, dtype=np.int64), np.diff(p[0])) for p in parts] or [np.zeros(0, np.int64)])
    ids = np.concatenate([p[1] for p in parts] or [np.zeros(0, np.int64)])
    dists = np.concatenate([p[2] for p in parts] or [np.zeros(0, np.int32)])
    variants = None
    if dihedral:
        variants = np.concatenate([p[3] if p[3] is not None else np.zeros(0, np.int8) for p in parts] or [np.zeros(0, np.int8)])
    return merge_hits(q, ids, dists, variants, nq, dedupe=False)  # disjoint ids: nothing to de-duplicate


@functools.lru_cache(maxsize=None)
def _shard_actor_class() -> Any:
    """The Ray actor class of :class:`Shard` (made once per process: Ray registers it)."""
    return import_ray().remote(max_restarts=0, max_task_retries=0)(Shard)


# ------------------------------------------------------------------------------- the index
class ShardedIndex:
    """An exact PDQ index split over ``shards`` Ray actors, each owning a ``HashIndex``.

    ``address``: passed to ``ray.init`` when Ray is not initialised yet (None: start or join
    a local instance). ``snapshot_dir``: where shards keep snapshots and logs (see the module
    docstring); reopening a folder restores its shards. ``actor_options``: Ray resources of
    each shard actor (default ``{"num_cpus": 1}``). ``threads``: search threads per shard
    (default: one per CPU reserved for the actor, at least 1). ``max_retries``: restarts per
    shard per call before :class:`ShardUnavailableError`. ``start_timeout``: seconds to wait
    for the shards to start (Ray waits forever when the cluster lacks the CPUs they reserve).

    The object pickles into a client with the same actor names, so Ray tasks can search it.
    """

    def __init__(
        self,
        shards: int = 2,
        address: Optional[str] = None,
        *,
        snapshot_dir: Optional[PathLike] = None,
        backend: str = DEFAULT_BACKEND,
        actor_options: Optional[dict] = None,
        threads: Optional[int] = None,
        max_retries: int = 3,
        wal_bytes: int = _DEFAULT_WAL_BYTES,
        start_timeout: float = 120.0,
    ) -> None:
        ray = import_ray()
        self.shards = check_int(shards, "shards", 1)
        self.max_retries = check_int(max_retries, "max_retries", 0)
        self._actor_options = dict(actor_options or {"num_cpus": 1})
        cpus = float(self._actor_options.get("num_cpus", 1) or 1)
        self._threads = check_int(threads, "threads", 0) if threads is not None else max(1, int(cpus))
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self._owns_dir = snapshot_dir is None
        folder = Path(tempfile.mkdtemp(prefix="ncii-shards-")) if snapshot_dir is None else Path(snapshot_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"snapshot_dir {folder} does not exist; create it (on storage every node can reach)")
        self.snapshot_dir = folder
        manifest = folder / MANIFEST
        wanted = {"format": 1, "routing": ROUTING, "shards": self.shards, "backend": backend}
        if manifest.exists():
            found = json.loads(manifest.read_text())
            if found != wanted:
                raise ValueError(f"{manifest} describes {found}, not {wanted}: reopen it with the same shards and backend")
        else:
            write_private_bytes(manifest, json.dumps(wanted).encode())
        self._spec = (str(folder), backend, check_int(wal_bytes, "wal_bytes", 1))
        self._name = f"ncii-shard-{os.getpid()}-{time.time_ns():x}"
        self._write_lock = threading.Lock()
        self._handles = [self._spawn(k) for k in range(self.shards)]
        try:
            ray.get([h.info.remote() for h in self._handles], timeout=start_timeout)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise ShardUnavailableError(
                f"the {self.shards} shard actors did not start within {start_timeout} s: does the cluster have "
                f"the resources they reserve ({self._actor_options} each)? lower actor_options['num_cpus']"
            ) from None
        self._call_all("info")  # a shard that failed to load its snapshot is retried, then raises

    # ---- actors ---------------------------------------------------------------------------
    def _spawn(self, k: int):
        folder, backend, wal_bytes = self._spec
        opts = dict(self._actor_options, name=f"{self._name}-{k}", get_if_exists=True)
        return _shard_actor_class().options(**opts).remote(k, self.shards, folder, backend, wal_bytes)

    def _call(self, calls: dict[int, Callable[[Any], Any]]) -> dict[int, Any]:
        """Run ``calls[k](actor_k)`` on every listed shard concurrently; restart a dead shard
        and retry it, at most ``max_retries`` times. Returns shard -> result."""
        ray = import_ray()
        dead_errors = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)
        results: dict[int, Any] = {}
        pending, attempt = dict(calls), {k: 0 for k in calls}
        while pending:
            refs = {k: fn(self._handles[k]) for k, fn in pending.items()}
            failed = {}
            for k, ref in refs.items():
                try:
                    results[k] = ray.get(ref)
                except dead_errors as exc:
                    failed[k] = exc
            pending = {}
            for k, exc in failed.items():
                attempt[k] += 1
                if attempt[k] > self.max_retries:
                    raise ShardUnavailableError(
                        f"shard {k} of {self.shards} is unreachable after {self.max_retries} restarts: {exc}"
                    ) from exc
                time.sleep(0.05 * 2 ** (attempt[k] - 1))  # let the cluster release the dead name
                self._handles[k] = self._spawn(k)
                pending[k] = calls[k]
        return results

    def _call_all(self, method: str, *args: Any) -> list:
        res = self._call({k: (lambda h, m=method: getattr(h, m).remote(*args)) for k in range(self.shards)})
        return [res[k] for k in range(self.shards)]

    # ---- mutation -------------------------------------------------------------------------
    def add(self, hashes: object, ids: object) -> np.ndarray:
        """Add hashes ``uint8 (N, 32)`` with their int64 ids (required: ids decide the shard).

        Nothing is added when any id is negative, repeated, or already present."""
        codes = as_hash_array(hashes, name="hashes")
        id_arr = as_id_array(ids)
        if id_arr.shape[0] != codes.shape[0]:
            raise ValueError(f"ids must have one entry per hash: got {id_arr.shape[0]} ids for {codes.shape[0]} hashes")
        if id_arr.size and id_arr.min() < 0:
            raise ValueError("ids must be non-negative")
        if np.unique(id_arr).shape[0] != id_arr.shape[0]:
            raise ValueError("ids contains duplicates; every hash needs its own id")
        groups = self._route(id_arr)
        with self._write_lock:
            present = self._call({k: (lambda h, i=idx: h.check_absent.remote(id_arr[i])) for k, idx in groups.items()})
            clash = [x for k in sorted(present) for x in present[k]]
            if clash:
                raise ValueError(f"ids already in the index: {clash[:5]}; remove them first")
            tried: set = set()

            def add_call(k: int, idx: np.ndarray):
                def call(h):
                    retry = k in tried
                    tried.add(k)
                    return h.add.remote(codes[idx], id_arr[idx], retry)
                return call

            self._call({k: add_call(k, idx) for k, idx in groups.items()})
        return id_arr

    def remove(self, ids: object) -> int:
        """Remove entries by id (unknown ids are ignored); returns how many were removed."""
        id_arr = np.unique(as_id_array(ids))
        groups = self._route(id_arr)
        with self._write_lock:
            counts = self._call({k: (lambda h, i=idx: h.count_present.remote(id_arr[i])) for k, idx in groups.items()})
            self._call({k: (lambda h, i=idx: h.remove.remote(id_arr[i])) for k, idx in groups.items()})
        return int(sum(counts.values()))

    def snapshot(self) -> None:
        """Fold every shard's log into its snapshot now (e.g. before a planned shutdown)."""
        with self._write_lock:
            self._call_all("snapshot")

    def _route(self, ids: np.ndarray) -> dict[int, np.ndarray]:
        where = shard_of(ids, self.shards)
        return {k: np.nonzero(where == k)[0] for k in range(self.shards) if (where == k).any()}

    # ---- search ---------------------------------------------------------------------------
    def range_search(self, queries: object, radius: int = PDQ_MATCH_THRESHOLD, *, dihedral: bool = False) -> RangeResult:
        """Like :meth:`HashIndex.range_search`, over all shards; identical results.

        The query batch is put in the object store once and every shard reads that copy."""
        radius = check_int(radius, "radius", 0, 8 * PDQ_HASH_BYTES)
        flat, nq, variants = as_queries(queries, bool(dihedral))
        batch = flat.reshape(nq, variants, PDQ_HASH_BYTES) if dihedral else flat
        ref = import_ray().put(batch)
        res = self._call({
            k: (lambda h: h.range_search.remote(ref, radius, bool(dihedral), self._threads)) for k in range(self.shards)
        })
        return merge_range_results([res[k] for k in range(self.shards)], nq, bool(dihedral))

    # ---- introspection and lifetime ------------------------------------------------------
    def __len__(self) -> int:
        return sum(info["size"] for info in self._call_all("info"))

    @property
    def ids(self) -> np.ndarray:
        """The live ids, ascending (gathered from every shard)."""
        return np.sort(np.concatenate(self._call_all("ids")))

    def shard_info(self) -> list[dict]:
        """Per shard: size, log records replayed at its last start, worker pid."""
        return self._call_all("info")

    def actor(self, k: int):
        """The Ray actor handle of shard ``k`` (for operations and failure drills)."""
        return self._handles[k]

    def close(self) -> None:
        """Stop the shard actors; delete the snapshot folder only if this object made it."""
        ray = import_ray()
        for h in self._handles:
            try:
                ray.kill(h, no_restart=True)
            except Exception:  # already gone
                pass
        self._handles = []
        if self._owns_dir:
            shutil.rmtree(self.snapshot_dir, ignore_errors=True)

    def __enter__(self) -> "ShardedIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ShardedIndex(shards={self.shards}, snapshot_dir={str(self.snapshot_dir)!r})"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_write_lock"] = None  # a client in a task: searches only
        state["_owns_dir"] = False
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._write_lock = threading.Lock()
