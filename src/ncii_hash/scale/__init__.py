"""Scale-out on Ray (``distributed`` extra): a sharded exact index (:mod:`.sharded`) and a
resumable catalogue backfill (:mod:`.backfill`); one shard with its write-ahead log is :mod:`.shard`.
Ray is imported only when used."""

from ..errors import ShardUnavailableError
from .backfill import BackfillReport, backfill
from .sharded import ShardedIndex, merge_range_results, shard_of

__all__ = ["BackfillReport", "ShardUnavailableError", "ShardedIndex", "backfill", "merge_range_results", "shard_of"]
