"""The public pdq_hash / pdq_hash_many behaviour around inputs and errors."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

import ncii_hash as nh
from ncii_hash import ImageError

from imageio_helpers import encode, scene

SCENE = scene()
SCENE_IMG = Image.fromarray(SCENE)
PNG = encode(SCENE_IMG, "PNG")


@pytest.fixture
def files(tmp_path):
    """Five good images and four bad inputs, in a fixed mixed order."""
    rng = np.random.default_rng(11)
    good = []
    for i in range(5):
        arr = np.ascontiguousarray(np.roll(SCENE, 37 * i, axis=1))
        p = tmp_path / f"good{i}.png"
        p.write_bytes(encode(Image.fromarray(arr), "PNG"))
        good.append(p)
    truncated = tmp_path / "truncated.jpg"
    jpeg = encode(SCENE_IMG, "JPEG")
    truncated.write_bytes(jpeg[: len(jpeg) * 6 // 10])  # header intact, scan data cut
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    noise = tmp_path / "noise.png"
    noise.write_bytes(bytes(rng.integers(0, 256, 500, dtype=np.uint8)))
    missing = tmp_path / "missing.png"
    items = [good[0], truncated, good[1], good[2], text, missing, good[3], noise, good[4]]
    return items, {1, 4, 5, 7}


# ---- inputs -----------------------------------------------------------------------------

def test_every_input_kind_gives_the_same_hash(tmp_path):
    path = tmp_path / "scene.png"
    path.write_bytes(PNG)
    expected = nh.pdq_hash(SCENE).hex
    rgba = np.dstack([SCENE, np.full(SCENE.shape[:2], 7, np.uint8)])
    for source in (
        str(path), path, PNG, bytearray(PNG), memoryview(PNG), SCENE_IMG, Image.open(io.BytesIO(PNG)), rgba,
        np.asfortranarray(SCENE), SCENE[::1, ::1, :],
    ):
        assert nh.pdq_hash(source).hex == expected, type(source)


def test_grey_array_shapes_agree():
    grey = np.asarray(SCENE_IMG.convert("L"))
    h = nh.pdq_hash(grey).hex
    assert nh.pdq_hash(grey[:, :, None]).hex == h
    assert nh.pdq_hash(SCENE_IMG.convert("L")).hex == h


def test_strided_views_hash_like_their_copies():
    for view in (SCENE[:, ::2], SCENE[::-1], SCENE[:, ::-1], SCENE[10:200:3, 5::2]):
        assert nh.pdq_hash(view).hex == nh.pdq_hash(np.ascontiguousarray(view)).hex


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int64, np.int8, bool])
def test_wrong_dtype_is_a_type_error_that_says_uint8(dtype):
    with pytest.raises(TypeError, match="uint8"):
        nh.pdq_hash(SCENE.astype(dtype))


@pytest.mark.parametrize("shape", [(64,), (64, 64, 2), (64, 64, 5), (2, 64, 64, 3), (0, 64, 2), ()])
def test_wrong_shape_is_a_value_error(shape):
    with pytest.raises(ValueError) as info:
        nh.pdq_hash(np.zeros(shape, np.uint8))
    assert not isinstance(info.value, TypeError)


@pytest.mark.parametrize("obj", [None, 42, 3.5, ["a.jpg"], {"path": "a.jpg"}, io.BytesIO(PNG), object()])
def test_objects_that_are_no_image_are_a_type_error(obj):
    with pytest.raises(TypeError, match="path|bytes|PIL|array"):
        nh.pdq_hash(obj)


def test_option_errors():
    with pytest.raises(ValueError, match="resize"):
        nh.pdq_hash(SCENE, resize="512")
    with pytest.raises(ValueError, match="decode"):
        nh.pdq_hash(PNG, decode="turbo")
    with pytest.raises(ValueError, match="threads"):
        nh.pdq_hash_many([PNG], threads=-1)


def test_image_error_is_a_value_error_with_source_and_reason():
    with pytest.raises(ValueError) as info:
        nh.pdq_hash(b"junk")
    err = info.value
    assert isinstance(err, ImageError)
    assert err.source == "<4 bytes>" and err.reason and str(err) == f"{err.source}: {err.reason}"


def test_a_lazy_pil_image_with_corrupt_data_is_an_image_error():
    jpeg = encode(SCENE_IMG, "JPEG")
    img = Image.open(io.BytesIO(jpeg[: len(jpeg) * 6 // 10]))
    with pytest.raises(ImageError, match="corrupt or truncated"):
        nh.pdq_hash(img)


def test_tiny_images_hash_with_zero_quality():
    res = nh.pdq_hash(np.full((4, 4, 3), 128, np.uint8))
    assert res.quality == 0 and res.low_quality


# ---- batches -------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", [1, 2])
def test_one_bad_file_never_stops_the_batch(files, threads):
    items, bad = files
    calls = []
    batch = nh.pdq_hash_many(items, threads=threads, progress=lambda done, total: calls.append((done, total)))
    n = len(items)
    assert len(batch) == n and batch.hashes.shape == (n, 32) and batch.hashes.dtype == np.uint8
    assert set(batch.errors) == bad
    assert list(batch.ok) == [i not in bad for i in range(n)]
    for i, item in enumerate(items):
        if i in bad:
            err = batch.errors[i]
            assert isinstance(err, ImageError) and str(item) in str(err)
            assert batch.qualities[i] == -1 and not batch.hashes[i].any()
        else:
            single = nh.pdq_hash(item)
            assert batch.hashes[i].tobytes() == single.hash.tobytes()
            assert batch.qualities[i] == single.quality
    assert calls == [(k, n) for k in range(1, n + 1)]


def test_batch_reasons_are_specific(files):
    items, _ = files
    errors = nh.pdq_hash_many(items, threads=2).errors
    assert "corrupt or truncated" in errors[1].reason
    assert "not a supported image" in errors[4].reason
    assert "no such file" in errors[5].reason


def test_batch_accepts_mixed_kinds_and_generators(tmp_path):
    items = [PNG, SCENE, SCENE_IMG, None, b""]
    batch = nh.pdq_hash_many(iter(items), threads=2)
    assert set(batch.errors) == {3, 4}
    assert all(isinstance(e, ImageError) for e in batch.errors.values())
    expected = nh.pdq_hash(SCENE).hash
    assert all(batch.hashes[i].tobytes() == expected.tobytes() for i in range(3))


def test_batch_dihedral_matches_single_calls(files):
    items, bad = files
    batch = nh.pdq_hash_many(items, dihedral=True, threads=2)
    for i, item in enumerate(items):
        if i not in bad:
            assert np.array_equal(batch.dihedral[i], nh.pdq_hash(item, dihedral=True).dihedral)


def test_batch_options_reach_every_item():
    batch = nh.pdq_hash_many([PNG, PNG], max_pixels=100, threads=2)
    assert set(batch.errors) == {0, 1} and "above the limit" in batch.errors[0].reason


def test_empty_batch():
    calls = []
    batch = nh.pdq_hash_many([], progress=lambda d, t: calls.append((d, t)))
    assert len(batch) == 0 and batch.hashes.shape == (0, 32) and calls == [] and batch.errors == {}


def test_batch_emits_no_warnings(files):
    items, _ = files
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ResourceWarning)
        nh.pdq_hash_many(items, threads=2)
