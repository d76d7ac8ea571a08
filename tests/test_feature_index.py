"""FeatureIndex (issue #8): candidates + verification, removal, segments, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cv2")

from ncii_hash import _core  # noqa: E402
from ncii_hash.features import orb as F  # noqa: E402
from ncii_hash.features.index import FeatureIndex  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = [ROOT / "examples" / "survivor" / "IMG_0001.jpg"] + sorted(
    (ROOT / "tests" / "data" / "pdq" / "data" / "reg-test-input" / "labelme-subset").glob("*.jpg"))


def _noise_set(rng: np.random.Generator, n: int = 256) -> F.FeatureSet:
    """A random feature set (uniform descriptors and geometry): a distractor."""
    w, h = 512, 384
    return F.FeatureSet(w, h, (rng.random((n, 2)) * [w - 1, h - 1]).astype(np.float32),
                        rng.integers(0, 256, n).astype(np.float32) * (360 / 256),
                        rng.integers(0, 8, n).astype(np.uint8), rng.integers(0, 256, (n, 32), dtype=np.uint8))


@pytest.fixture(scope="module")
def photos():
    return [Image.open(p).convert("RGB") for p in PHOTOS]


@pytest.fixture(scope="module")
def index(photos):
    rng = np.random.default_rng(5)
    idx = FeatureIndex()
    idx.add(range(1000, 1200), [_noise_set(rng) for _ in range(200)])
    idx.add([10 + i for i in range(len(photos))], [F.extract_features(np.asarray(p)) for p in photos])
    return idx


def _crop_rotate(im: Image.Image) -> Image.Image:
    w, h = im.size
    return im.crop((int(w * 0.08), int(h * 0.05), int(w * 0.98), int(h * 0.97))).rotate(4, resample=Image.BILINEAR)


def test_search_finds_the_edited_photo_and_nothing_else(index, photos):
    usable = 0
    for i, im in enumerate(photos):
        q = F.extract_features(np.asarray(_crop_rotate(im)), max_features=F.QUERY_FEATURES)
        hits = index.search(q)
        if not index.get(10 + i).usable:  # two of the labelme images are plain sky
            assert hits == []
            continue
        usable += 1
        assert [h.id for h in hits] == [10 + i]
        assert hits[0].match.is_match and hits[0].inliers >= F.MIN_INLIERS
        cands = index.search(q, verify_candidates=False)
        assert cands[0].id == 10 + i and cands[0].match is None
    assert usable >= 3


def test_candidates_agree_with_a_numpy_vote(index, photos):
    """The C++ voter's plain votes equal a direct computation over the same tables."""
    seg = index._segments[-1]
    q = F.extract_features(np.asarray(_crop_rotate(photos[0])), max_features=F.QUERY_FEATURES)
    img, score, votes, _ = _core.lf_vote(q.descriptors, (np.rint(q.angle * 256 / 360).astype(np.int64) % 256).astype(np.uint8),
                                         q.octave, seg.records, len(seg.ids), None, seg.positions, seg.offsets,
                                         seg.postings, 50, 1, 1000, 0, 1)
    desc = seg.records[..., 6:]
    bits = np.unpackbits(desc, axis=-1, bitorder="little")
    qbits = np.unpackbits(q.descriptors, axis=-1, bitorder="little")
    want = {}
    kb = seg.positions.shape[1]
    w = 1 << np.arange(kb)
    for row in range(len(seg.ids)):
        n = int(seg.counts[row])
        d = np.bitwise_count(q.descriptors.view(np.uint64)[:, None, :] ^ desc[row, :n].copy().view(np.uint64)[None]).sum(-1)
        same = np.zeros(d.shape, bool)
        for t in range(seg.positions.shape[0]):
            kq = (qbits[:, seg.positions[t]] * w).sum(1)
            kr = (bits[row, :n][:, seg.positions[t]] * w).sum(1)
            same |= kq[:, None] == kr[None, :]
        v = int(((d <= 50) & same).any(axis=1).sum())
        if v:
            want[row] = v
    got = dict(zip(img.tolist(), votes.tolist()))
    assert all(got[r] == want[r] for r in got)
    assert set(got) == {r for r, v in want.items() if r in got}
    assert max(want, key=want.get) in got


def test_remove_then_readd(photos):
    idx = FeatureIndex()
    sets = [F.extract_features(np.asarray(p)) for p in photos]
    idx.add([1, 2, 3, 4, 5], sets)
    q = F.extract_features(np.asarray(_crop_rotate(photos[0])), max_features=F.QUERY_FEATURES)
    assert [h.id for h in idx.search(q)] == [1]
    assert idx.remove([1]) == 1 and 1 not in idx and len(idx) == 4
    assert idx.search(q) == []
    with pytest.raises(KeyError):
        idx.remove([1])
    idx.add([9], [sets[0]])
    assert [h.id for h in idx.search(q)] == [9]
    idx.compact()
    assert len(idx._segments) == 1 and [h.id for h in idx.search(q)] == [9]


def test_many_small_adds_stay_few_segments():
    rng = np.random.default_rng(1)
    idx = FeatureIndex()
    for i in range(64):
        idx.add([i], [_noise_set(rng, 40)])
    assert len(idx) == 64
    assert len(idx._segments) <= 7  # logarithmic
    assert all(i in idx for i in range(64))


def test_add_checks_its_input(photos):
    idx = FeatureIndex()
    fs = F.extract_features(np.asarray(photos[0]))
    with pytest.raises(ValueError, match="ids for"):
        idx.add([1, 2], [fs])
    with pytest.raises(ValueError, match="duplicate"):
        idx.add([1, 1], [fs, fs])
    with pytest.raises(TypeError):
        idx.add([1], [b"bytes"])  # type: ignore[list-item]
    big = F.extract_features(np.asarray(photos[0]), max_features=F.QUERY_FEATURES)
    if len(big) > F.MAX_FEATURES:
        with pytest.raises(ValueError, match="at most 256"):
            idx.add([1], [big])


def test_save_load_round_trip_and_damage(tmp_path, index, photos):
    path = tmp_path / "f.idx"
    index.save(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    back = FeatureIndex.load(path)
    q = F.extract_features(np.asarray(_crop_rotate(photos[3])), max_features=F.QUERY_FEATURES)
    assert [h.id for h in back.search(q)] == [h.id for h in index.search(q)] == [13]
    assert len(back) == len(index)
    assert back.get(13).to_bytes() == index.get(13).to_bytes()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    bad = tmp_path / "bad.idx"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        FeatureIndex.load(bad)
    bad.write_bytes(bytes(data[:100]))
    with pytest.raises(ValueError):
        FeatureIndex.load(bad)
    bad.write_bytes(b"not an index at all")
    with pytest.raises(ValueError, match="not an ncii_hash feature index"):
        FeatureIndex.load(bad)
    empty = tmp_path / "empty.idx"
    FeatureIndex().save(empty)
    assert len(FeatureIndex.load(empty)) == 0


def test_unusable_query_finds_nothing(index):
    assert index.search(F.FeatureSet.empty()) == []


def _segment_arrays(sets: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """records (n, 256, 38), counts, frames of feature sets, built from their serialized bytes."""
    records = np.zeros((len(sets), F.MAX_FEATURES, 38), np.uint8)
    for i, fs in enumerate(sets):
        records[i, : len(fs)] = np.frombuffer(fs.to_bytes()[14:], np.uint8).reshape(len(fs), 38)
    counts = np.array([len(fs) for fs in sets], np.uint16)
    frames = np.array([(fs.width, fs.height) for fs in sets], np.uint16)
    return records, counts, frames


def test_from_arrays_equals_add_and_saves_without_copying(tmp_path, photos):
    rng = np.random.default_rng(9)
    sets = [_noise_set(rng) for _ in range(30)] + [F.extract_features(np.asarray(p)) for p in photos]
    ids = np.arange(500, 500 + len(sets), dtype=np.int64)
    records, counts, frames = _segment_arrays(sets)
    mm = np.lib.format.open_memmap(tmp_path / "records.npy", mode="w+", dtype=np.uint8, shape=records.shape)
    mm[:] = records
    bulk = FeatureIndex.from_arrays(mm, counts, frames, ids)
    added = FeatureIndex()
    added.add(ids, sets)
    assert len(bulk) == len(sets) and bulk.get(505).to_bytes() == sets[5].to_bytes()
    q = F.extract_features(np.asarray(_crop_rotate(photos[0])), max_features=F.QUERY_FEATURES)
    want = [(h.id, h.score, h.votes, h.inliers) for h in added.search(q)]
    assert want and want[0][0] == 530
    assert [(h.id, h.score, h.votes, h.inliers) for h in bulk.search(q)] == want
    bulk.save(tmp_path / "bulk.idx")
    assert bulk._segments[0].records is mm  # an already compact index is saved as it is
    back = FeatureIndex.load(tmp_path / "bulk.idx")
    assert [(h.id, h.score, h.votes, h.inliers) for h in back.search(q)] == want


def test_from_arrays_checks_its_input():
    rng = np.random.default_rng(10)
    records, counts, frames = _segment_arrays([_noise_set(rng) for _ in range(3)])
    ids = np.array([1, 2, 3], np.int64)
    assert len(FeatureIndex.from_arrays(records[:0], counts[:0], frames[:0], ids[:0])) == 0
    with pytest.raises(ValueError, match="duplicate"):
        FeatureIndex.from_arrays(records, counts, frames, np.array([1, 1, 3], np.int64))
    with pytest.raises(TypeError, match="counts must be"):
        FeatureIndex.from_arrays(records, counts.astype(np.int32), frames, ids)
    with pytest.raises(ValueError, match="do not fit"):
        FeatureIndex.from_arrays(records[:2], counts, frames, ids)
    with pytest.raises(ValueError, match="exceeds"):
        FeatureIndex.from_arrays(records, np.array([1, 2, 300], np.uint16), frames, ids)
    with pytest.raises(ValueError, match="C-contiguous"):
        FeatureIndex.from_arrays(np.asfortranarray(records), counts, frames, ids)
