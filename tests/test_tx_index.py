"""NciiPdqIndex against python-threatexchange's own PDQ indexes (the real pytx from PyPI) and a
brute-force NumPy oracle: same matches where pytx is exact, a superset equal to the oracle
where pytx's approximate multi-index misses; pickling through SignalTypeIndex; bad inputs."""

from __future__ import annotations

import io
import pickle
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("threatexchange", reason="the pytx extension needs threatexchange (pip install "
                    "'ncii-hash[threatexchange]')")
pytest.importorskip("faiss", reason="pytx's PDQ indexes need faiss")

from threatexchange.signal_type.index import SignalTypeIndex  # noqa: E402
from threatexchange.signal_type.pdq import pdq_index as pytx_pdq_index  # noqa: E402

from ncii_hash.errors import IndexFileError  # noqa: E402
from ncii_hash.tx import NciiPdqIndex  # noqa: E402

try:
    from threatexchange.signal_type.pdq.pdq_index2 import PDQIndex2
except ImportError:  # pragma: no cover - older pytx
    PDQIndex2 = None


def flip(rng: np.random.Generator, code: np.ndarray, n: int) -> np.ndarray:
    bits = np.unpackbits(code)
    bits[rng.choice(256, size=n, replace=False)] ^= 1
    return np.packbits(bits)


def random_bank(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32), dtype=np.uint8)


def clustered_bank(seed: int, centres: int, per_centre: int, max_flips: int = 40) -> np.ndarray:
    """Codes near a few centres: most pairs within a cluster are within 31 bits."""
    rng = np.random.default_rng(seed)
    hubs = rng.integers(0, 256, size=(centres, 32), dtype=np.uint8)
    rows = [flip(rng, hubs[c], int(rng.integers(0, max_flips + 1))) for c in range(centres) for _ in range(per_centre)]
    return np.stack(rows)


def hexes(codes: np.ndarray) -> list[str]:
    return [row.tobytes().hex() for row in codes]


def oracle(bank: np.ndarray, query: np.ndarray, threshold: int) -> Counter:
    """Brute force: Counter of (entry, distance) within threshold."""
    d = np.unpackbits(bank ^ query[None, :], axis=1).sum(axis=1)
    return Counter((int(i), int(d[i])) for i in np.nonzero(d <= threshold)[0])


def found(index: SignalTypeIndex, query_hex: str) -> Counter:
    return Counter((int(m.metadata), int(m.similarity_info.distance)) for m in index.query(query_hex))


def queries_for(bank: np.ndarray, seed: int, count: int) -> np.ndarray:
    """Bank members moved by 0..40 bits, and fresh random codes."""
    rng = np.random.default_rng(seed)
    near = [flip(rng, bank[int(rng.integers(len(bank)))], int(rng.integers(0, 41))) for _ in range(count - count // 4)]
    far = rng.integers(0, 256, size=(count // 4, 32), dtype=np.uint8)
    return np.concatenate([np.stack(near), far])


@pytest.fixture(scope="module", params=["random", "clustered"])
def bank(request) -> np.ndarray:
    if request.param == "random":
        codes = random_bank(11, 6000)
        rng = np.random.default_rng(12)  # plus near-duplicates, so random queries have matches
        extra = np.stack([flip(rng, codes[int(rng.integers(len(codes)))], int(rng.integers(0, 32))) for _ in range(1500)])
        return np.concatenate([codes, extra])
    return clustered_bank(13, centres=6, per_centre=800)


def test_same_matches_as_pytx_pdqindex_and_exact(bank: np.ndarray) -> None:
    entries = [(h, i) for i, h in enumerate(hexes(bank))]
    ours = NciiPdqIndex(entries)
    theirs = pytx_pdq_index.PDQIndex(entries)
    assert len(ours) == len(theirs) == len(bank)
    total = missed_by_pytx = 0
    for q in queries_for(bank, 5, 160):
        want = oracle(bank, q, 31)
        got = found(ours, q.tobytes().hex())
        assert got == want  # exact: every entry within 31, distances right, nothing else
        pytx = found(theirs, q.tobytes().hex())
        assert not pytx - got, "pytx found a match we did not"
        total += sum(want.values())
        missed_by_pytx += sum((want - pytx).values())
    assert total > 100, "the data must produce many matches for the comparison to mean anything"
    # pytx's FAISS multi-index is approximate: whatever it misses, ours has (asserted above).
    assert missed_by_pytx <= total


def test_flat_index_at_its_threshold() -> None:
    """pytx's PDQFlatIndex is exact at threshold 52: ours at 52 answers the same."""
    bank = clustered_bank(21, centres=4, per_centre=300, max_flips=60)
    entries = [(h, i) for i, h in enumerate(hexes(bank))]
    theirs = pytx_pdq_index.PDQFlatIndex(entries)
    ours = NciiPdqIndex(entries, threshold=theirs.get_match_threshold())
    for q in queries_for(bank, 22, 60):
        h = q.tobytes().hex()
        assert found(ours, h) == found(theirs, h) == oracle(bank, q, 52)


@pytest.mark.skipif(PDQIndex2 is None, reason="this pytx has no PDQIndex2")
def test_same_matches_as_pytx_pdqindex2_with_duplicates() -> None:
    bank = clustered_bank(31, centres=5, per_centre=300)
    hx = hexes(bank)
    entries = [(h, i) for i, h in enumerate(hx)] + [(hx[i], len(hx) + k) for k, i in enumerate(range(0, len(hx), 7))]
    full = np.concatenate([bank, bank[::7]])
    ours = NciiPdqIndex(entries)
    theirs = PDQIndex2(entries=entries)
    assert len(ours) == len(entries)  # one entry per pair; PDQIndex2 counts distinct hashes
    for q in queries_for(bank, 32, 80):
        h = q.tobytes().hex()
        assert found(ours, h) == found(theirs, h) == oracle(full, q, 31)


def test_duplicates_are_separate_entries_and_distances_are_ints() -> None:
    h = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    near = "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22"
    index = NciiPdqIndex.build([(h, "a"), (h, "b"), (near, "c")])
    matches = index.query(h)
    assert [(m.metadata, m.similarity_info.distance) for m in matches] == [("a", 0), ("b", 0), ("c", 2)]
    assert all(type(m.similarity_info.distance) is int for m in matches)
    assert [m.metadata for m in NciiPdqIndex([(h, 1)], threshold=1).query(near)] == []
    assert [m.metadata for m in NciiPdqIndex([(h, 1)], threshold=2).query(near)] == [1]  # inclusive


def test_add_one_by_one_equals_add_all_and_mixed_metadata() -> None:
    bank = clustered_bank(41, centres=3, per_centre=100)
    hx = hexes(bank)
    a = NciiPdqIndex()
    for i, h in enumerate(hx):
        a.add(h, i)
    b = NciiPdqIndex(iter([(h, i) for i, h in enumerate(hx)]))  # any iterable
    for q in queries_for(bank, 42, 30):
        assert found(a, q.tobytes().hex()) == found(b, q.tobytes().hex())
    a.add(hx[0], {"content": "not an int"})  # metadata of any type, after ints
    assert {"content": "not an int"} in [m.metadata for m in a.query(hx[0])]
    assert 0 in [m.metadata for m in a.query(hx[0])]


def test_remove_is_immediate_and_survives_pickling() -> None:
    bank = clustered_bank(51, centres=2, per_centre=200)
    hx = hexes(bank)
    index = NciiPdqIndex([(h, i) for i, h in enumerate(hx)] + [(hx[0], "dup")])
    assert index.remove(hx[0], "dup") == 1
    assert "dup" not in [m.metadata for m in index.query(hx[0])]
    assert index.remove(hx[0]) == 1
    assert 0 not in [m.metadata for m in index.query(hx[0])]
    assert index.remove("00" * 32) == 0
    assert len(index) == len(hx) - 1
    again = pickle.loads(pickle.dumps(index))
    assert 0 not in [m.metadata for m in again.query(hx[0])]
    q = flip(np.random.default_rng(52), bank[5], 9).tobytes().hex()
    want = {k: v for k, v in oracle(bank, np.frombuffer(bytes.fromhex(q), np.uint8), 31).items() if k[0] != 0}
    assert found(again, q) == Counter(want)


@pytest.mark.parametrize("metadata", ["ints", "objects"])
def test_serialize_deserialize_round_trip(metadata: str) -> None:
    bank = clustered_bank(61, centres=4, per_centre=250)
    hx = hexes(bank)
    meta = list(range(len(hx))) if metadata == "ints" else [("content", i) for i in range(len(hx))]
    index = NciiPdqIndex(list(zip(hx, meta)), threshold=25)
    buf = io.BytesIO()
    index.serialize(buf)
    buf.seek(0)
    loaded = SignalTypeIndex.deserialize(buf)  # what HMA does (pickle.load)
    assert type(loaded) is NciiPdqIndex and loaded.threshold == 25 and len(loaded) == len(index)
    for q in queries_for(bank, 62, 40):
        h = q.tobytes().hex()
        assert [(m.metadata, m.similarity_info.distance) for m in loaded.query(h)] == \
               [(m.metadata, m.similarity_info.distance) for m in index.query(h)]
    loaded.add(hx[0], meta[0])  # a loaded index takes more entries
    assert [m.metadata for m in loaded.query(hx[0])].count(meta[0]) == 2
    if metadata == "ints":  # HMA's int metadata pickles as one array: ~8 bytes per entry beyond the 40
        assert len(buf.getvalue()) < 49 * len(hx) + 4096


def test_a_damaged_pickle_is_refused() -> None:
    index = NciiPdqIndex([(hexes(random_bank(71, 50))[i], i) for i in range(50)])
    data = bytearray(pickle.dumps(index))
    code = bytes(random_bank(71, 50)[10])
    at = bytes(data).find(code)
    assert at > 0
    data[at] ^= 0x01  # one flipped bit in a stored hash
    with pytest.raises(IndexFileError):
        pickle.loads(bytes(data))
    state = index.__getstate__()
    state["version"] = 99
    with pytest.raises(ValueError, match="rebuild the index"):
        NciiPdqIndex.__new__(NciiPdqIndex).__setstate__(state)


def test_dihedral_query_finds_a_rotated_image() -> None:
    from ncii_hash.image import pdq_hash
    from ncii_hash.tx import NciiPdqSignal
    from tx_helpers import sample_image

    path = sample_image()
    upright = pdq_hash(path)
    rotated = np.rot90(np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(path).convert("RGB")))
    rot_hash = pdq_hash(np.ascontiguousarray(rotated))
    index = NciiPdqIndex([(upright.hex, "banked")])
    assert index.query(rot_hash.hex) == []  # a plain query misses the rotated copy
    variants = NciiPdqSignal.dihedral_hashes_from_file(path)
    assert len(variants) == 8 and variants[0] == upright.hex
    rot_variants = [row.tobytes().hex() for row in pdq_hash(np.ascontiguousarray(rotated), dihedral=True).dihedral]
    assert [m.metadata for m in index.query_dihedral(rot_variants)] == ["banked"]


@pytest.mark.parametrize("bad", ["", "xyz", "g" * 64, "a" * 63, "a" * 65, "ab" * 31 + " z"])
def test_bad_hex_is_a_clear_value_error(bad: str) -> None:
    index = NciiPdqIndex([("a" * 64, 1)])
    with pytest.raises(ValueError, match="PDQ hex"):
        index.query(bad)
    with pytest.raises(ValueError, match="position 1"):
        index.add_all([("b" * 64, 2), (bad, 3)])
    assert len(index) == 1 and [m.metadata for m in index.query("b" * 64)] == []  # nothing added


def test_other_bad_inputs() -> None:
    index = NciiPdqIndex()
    with pytest.raises(TypeError, match="hex str"):
        index.query(b"a" * 64)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pairs"):
        index.add_all(["a" * 64])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="must be a str"):
        index.add_all([(None, 1)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="threshold"):
        NciiPdqIndex(threshold=-1)
    with pytest.raises(ValueError, match="backend"):
        NciiPdqIndex(backend="no-such-backend")
    with pytest.raises(ValueError, match="8 dihedral"):
        index.query_dihedral(["a" * 64] * 3)
    assert index.query("A" * 64) == [] and len(index) == 0  # upper case is a valid query


def test_queries_while_another_thread_adds() -> None:
    """Every match a reader sees is a real entry at its true distance, while a writer adds
    batches and switches the metadata from ints to objects half-way."""
    import threading

    bank = clustered_bank(81, centres=3, per_centre=400)
    hx = hexes(bank)
    index = NciiPdqIndex()
    half = len(hx) // 2

    def writer() -> None:
        for lo in range(0, len(hx), 40):
            index.add_all([(h, i if lo < half else ("row", i)) for i, h in enumerate(hx[lo:lo + 40], lo)])

    queries = queries_for(bank, 82, 40)
    thread = threading.Thread(target=writer)
    thread.start()
    rounds = 0
    while thread.is_alive() or rounds == 0:
        rounds += 1
        for q in queries:
            for m in index.query(q.tobytes().hex()):
                row = m.metadata if isinstance(m.metadata, int) else m.metadata[1]
                assert int(np.unpackbits(bank[row] ^ q).sum()) == m.similarity_info.distance <= 31
    thread.join()
    for q in queries[:10]:
        got = Counter((m.metadata if isinstance(m.metadata, int) else m.metadata[1], m.similarity_info.distance)
                      for m in index.query(q.tobytes().hex()))
        assert got == oracle(bank, q, 31)
