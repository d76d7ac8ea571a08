"""Extra PDQ hashes of one picture (ncii_hash.image.variants): window geometry, the content-box
detector, query variants."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ncii_hash as nh
from ncii_hash.image import variants as v


@settings(max_examples=200, deadline=None)
@given(w=st.integers(1, 4000), h=st.integers(1, 4000), name=st.sampled_from(sorted(v.CANDIDATE_WINDOW_SETS)))
def test_window_boxes_stay_inside_the_picture(w, h, name):
    for top, bottom, left, right in v.survivor_windows(w, h, name):
        assert 0 <= top < bottom <= h and 0 <= left < right <= w


def test_centre_window_known_answer():
    assert v.window_box(100, 50, 0.7) == (8, 43, 15, 85)
    assert v.window_box(100, 50, 0.9, (0.0, 0.0)) == (0, 45, 0, 90)
    assert v.window_box(100, 50, 0.9, (1.0, 1.0)) == (5, 50, 10, 100)
    assert v.survivor_windows(640, 480, "none") == []


@pytest.mark.parametrize("args, error", [((0, 10), ValueError), ((10, -1), ValueError), ((10.5, 10), TypeError)])
def test_bad_sizes_refused(args, error):
    with pytest.raises(error, match="width and height"):
        v.survivor_windows(*args)


def test_unknown_window_set_named():
    with pytest.raises(ValueError, match="unknown window set 'nine'"):
        v.survivor_windows(10, 10, "nine")


# ---- helpers: a seeded "photo" with structure at every scale ---------------------------------

def _photo(h: int = 240, w: int = 320, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = 128 + 60 * np.sin(7 * xx + 3 * yy) + 40 * np.cos(11 * yy - 5 * xx)
    blobs = sum(rng.uniform(-50, 50) * np.exp(-((xx - rng.uniform(0, 1)) ** 2 + (yy - rng.uniform(0, 0.75)) ** 2) * 60)
                for _ in range(12))
    grey = np.clip(base + blobs + rng.normal(0, 6, (h, w)), 0, 255)
    return np.stack([grey, np.roll(grey, 9, axis=1), 255 - grey], axis=2).astype(np.uint8)


def _distance(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


def _phone_screenshot(photo: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The photo fitted to a 360-wide portrait canvas between a dark status bar with 'text'
    and a light app bar with 'text'; returns the canvas and the paste box."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (360, 780), (245, 245, 245))
    d = ImageDraw.Draw(canvas)
    d.rectangle((0, 0, 360, 30), fill=(20, 20, 20))
    d.text((12, 8), "12:34", fill=(255, 255, 255))
    for k in range(3):
        d.rectangle((340 - 16 * k, 10, 350 - 16 * k, 20), fill=(255, 255, 255))
    fitted = Image.fromarray(photo).resize((360, 270))
    top = 85
    canvas.paste(fitted, (0, top))
    d.rectangle((0, top + 270 + 14, 360, top + 270 + 48), fill=(225, 225, 225))
    d.text((12, top + 270 + 24), "Liked by 12 others", fill=(40, 40, 40))
    return np.asarray(canvas), (top, top + 270, 0, 360)


def test_photo_box_of_a_phone_screenshot_is_the_paste_box():
    shot, paste = _phone_screenshot(_photo())
    box = v.find_photo_box(v.working_luma(shot))
    assert box is not None
    assert all(abs(a - b) <= 4 for a, b in zip(box, paste)), (box, paste)


def test_photo_box_does_not_eat_into_a_dark_photo_beside_a_black_bar():
    photo = _photo()
    photo[:40] //= 8  # a dark top: mostly within the bar's level, never solid
    boxed = np.zeros((300, 320, 3), np.uint8)
    boxed[30:270] = photo
    assert v.find_photo_box(v.working_luma(boxed)) == (30, 270, 0, 320)


def test_photo_box_under_a_caption_banner_with_text():
    from PIL import Image, ImageDraw

    im = Image.fromarray(_photo(300, 400))
    d = ImageDraw.Draw(im)
    d.rectangle((0, 255, 400, 300), fill=(255, 255, 255))
    d.text((20, 265), "look at this lol", fill=(0, 0, 0))
    box = v.find_photo_box(v.working_luma(np.asarray(im)))
    assert box is not None and abs(box[1] - 255) <= 4 and box[0] == 0 and box[2] == 0 and box[3] == 400


def test_no_photo_box_in_a_plain_photo_and_none_in_a_flat_picture():
    assert v.find_photo_box(v.working_luma(_photo())) is None
    assert v.find_photo_box(np.full((100, 100), 128, np.uint8)) is None  # nothing would be left


def test_photo_box_found_in_a_screenshot_matches_the_photo():
    photo = _photo()
    shot, _ = _phone_screenshot(photo)
    q = v.query_variants(shot, v.VariantPlan(photo_box=True))
    banked = v.survivor_hashes(photo, "none")[0]
    assert q.names[0] == "whole" and "box" in q.names
    assert _distance(q.hashes[0], banked) > 31  # plain PDQ misses the screenshot
    assert _distance(q.hashes[q.names.index("box")], banked) <= 31
    strict = v.find_content_box(v.working_luma(shot))  # the strict border stops at the status bar
    assert ("border" in q.names) == (strict is not None)


def test_counter_rotation_brings_a_rotated_picture_back():
    from PIL import Image

    photo = _photo()
    banked = v.survivor_hashes(photo, "centre70")
    tilted = np.asarray(Image.fromarray(photo).rotate(4, resample=Image.BICUBIC, fillcolor=(0, 0, 0)))
    q = v.query_variants(tilted, v.VariantPlan(rotations=(-4.0, 4.0), windows="centre70"))
    assert q.names == ("whole", "whole/centre70", "rot-4", "rot-4/centre70", "rot+4", "rot+4/centre70")
    d = {n: _distance(h, banked[1] if "/" in n else banked[0]) for n, h in zip(q.names, q.hashes)}
    assert d["rot-4/centre70"] <= 31 and d["rot-4/centre70"] < d["whole/centre70"]
    assert d["rot-4/centre70"] < d["rot+4/centre70"]  # the wrong direction does not help


def test_plain_hash_is_always_the_first_variant():
    photo = _photo()
    q = v.query_variants(photo, v.VariantPlan(rotations=(2.0,), photo_box=True, windows="centre80"))
    assert q.names[0] == "whole"
    assert _distance(q.hashes[0], v.survivor_hashes(photo, "none")[0]) <= 4  # luma vs RGB rounding
    assert q.hashes.dtype == np.uint8 and q.hashes.shape == (len(q), 32) and q.hashes.flags.c_contiguous


def test_crop_hypothesis_finds_the_banked_window_in_a_cropped_upload():
    photo = _photo(400, 400)
    banked = v.survivor_hashes(photo, "centre70")[1]
    cropped = np.ascontiguousarray(photo[0:360, 0:360])  # keeps the top-left 90%
    q = v.query_variants(cropped, v.VariantPlan(windows="centre70", crops=((0.9, (0.0, 0.0)), (0.9, (1.0, 1.0)))))
    d = dict(zip(q.names, (_distance(h, banked) for h in q.hashes)))
    assert d["crop0.9@0,0/centre70"] <= 8 < d["crop0.9@1,1/centre70"]


def test_large_uploads_are_reduced_by_an_integer_factor():
    assert v.working_luma(np.zeros((1100, 2100, 3), np.uint8)).shape == (275, 525)
    assert v.working_luma(np.zeros((300, 500), np.uint8)).shape == (300, 500)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((10, 10), np.float32), "uint8"), (np.zeros((10, 10, 2), np.uint8), "uint8"),
    (np.zeros((0, 10, 3), np.uint8), "at least 1x1"),
])
def test_bad_pixels_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        v.query_variants(bad)


@pytest.mark.parametrize("kwargs, message", [
    ({"windows": "nine"}, "unknown window set"), ({"rotations": (0.0,)}, "non-zero"),
    ({"rotations": (90.0,)}, "within"), ({"crops": ((1.2, (0.5, 0.5)),)}, "crop hypotheses"),
    ({"subwindows": ((0.9, (0.5, 1.5)),)}, "sub-windows"),
])
def test_bad_plans_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        v.VariantPlan(**kwargs)


@settings(max_examples=60, deadline=None)
@given(w=st.integers(16, 700), h=st.integers(16, 700), seed=st.integers(0, 2**16))
def test_photo_box_stays_inside_odd_sizes(w, h, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w), dtype=np.uint8)
    a[: rng.integers(0, h // 3 + 1)] = rng.integers(0, 256)  # a flat band on top
    box = v.find_photo_box(a)
    if box is not None:
        top, bottom, left, right = box
        assert 0 <= top < bottom <= h and 0 <= left < right <= w


def test_bank_matches_a_screenshot_only_with_query_variants(tmp_path):
    from ncii_hash.bank import HashBank, image_match

    photo, other = _photo(seed=7), _photo(seed=99)
    shot, _ = _phone_screenshot(photo)
    with HashBank(tmp_path / "bank.db", create=True) as bank:
        case = bank.add_case(v.survivor_hashes(photo, "none"), [90])
        bank.add_case(v.survivor_hashes(other, "none"), [90])
        plain, robust = (image_match.match_images(bank, [shot, other[::-1].copy()], features=False, trim_borders=False,
                                                  variants=plan) for plan in (None, v.PLATFORM_VARIANTS))
    assert not plain[0].pdq
    assert [m.case_id for m in robust[0].pdq] == [case]
    assert robust[0].pdq[0].distance <= 31
    assert [m.case_id for m in robust[1].pdq] == [m.case_id for m in plain[1].pdq]  # a flip: dihedral as before


def test_bank_refuses_a_plan_cutting_windows_survivors_do_not_share(tmp_path):
    from ncii_hash.bank import HashBank, image_match

    with HashBank(tmp_path / "bank.db", create=True) as bank:
        with pytest.raises(ValueError, match=r"only the windows survivors share \(centre70\)"):
            image_match.match_images(bank, [_photo()], variants=v.VariantPlan(windows="corners90"))
        # the shared window is fine: an empty window index simply finds nothing
        assert image_match.match_images(bank, [_photo()], variants=v.WINDOW_VARIANTS)[0].pdq == ()
        with pytest.raises(TypeError, match="VariantPlan"):
            image_match.match_images(bank, [_photo()], variants="rotations")


def test_cli_match_query_variants_is_opt_in(tmp_path, capsys):
    from PIL import Image

    from ncii_hash.bank import HashBank
    from ncii_hash.cli import main

    photo = _photo()
    shot, _ = _phone_screenshot(photo)
    Image.fromarray(shot).save(tmp_path / "shot.png")
    with HashBank(tmp_path / "bank.db", create=True) as bank:
        bank.add_case(v.survivor_hashes(photo, "none"), [90])
    for flags, status in (([], "no match"), (["--query-variants"], "match")):
        assert main(["match", str(tmp_path / "bank.db"), str(tmp_path / "shot.png"), "--json", "-q",
                     "--no-features", "--no-trim-borders", *flags]) == 0
        assert json.loads(capsys.readouterr().out)[0]["status"] == status


def test_subwindow_of_a_larger_upload_matches_the_banked_crop():
    photo = _photo(400, 400)
    banked = v.survivor_hashes(np.ascontiguousarray(photo[20:380, 20:380]), "none")[0]  # she banked a crop
    q = v.query_variants(photo, v.VariantPlan(subwindows=((0.9, (0.5, 0.5)), (0.9, (0.0, 0.0)))))
    d = dict(zip(q.names, (_distance(h, banked) for h in q.hashes)))
    assert d["sub0.9@0.5,0.5"] <= 8 < d["sub0.9@0,0"] and d["whole"] > 31


def test_window_set_names_are_stable():
    # bench_inversion reads these names; renaming one silently drops it from the privacy figures
    assert list(v.CANDIDATE_WINDOW_SETS) == ["none", "centre80", "centre70", "centre60", "centre80+centre60",
                                              "corners90", "grid9_90"]
    assert v.SURVIVOR_WINDOW_SET in v.CANDIDATE_WINDOW_SETS
    assert [len(v.survivor_windows(640, 480, n)) for n in v.CANDIDATE_WINDOW_SETS] == [0, 1, 1, 1, 2, 4, 9]


def test_window_hashes_are_the_whole_pictures_then_each_boxs_pdq_hash():
    px = _photo(200, 300, seed=41)
    boxes = [(10, 150, 20, 260), (0, 200, 0, 150)]
    got = v.window_hashes(px, boxes)
    want = [nh.pdq_hash(px).hash] + [nh.pdq_hash(np.ascontiguousarray(px[t:b, l:r])).hash for t, b, l, r in boxes]
    assert got.shape == (3, 32) and got.dtype == np.uint8 and (got == np.stack(want)).all()
    assert (v.survivor_hashes(px, "centre70") == v.window_hashes(px, v.survivor_windows(300, 200, "centre70"))).all()
    assert v.survivor_hashes(px, "none").shape == (1, 32)


def test_extra_rows_group_the_variants_for_like_for_like_matching():
    qv = v.query_variants(_photo(), v.WINDOW_VARIANTS)
    groups = qv.extra_rows()
    names = qv.names[1:]
    assert set(groups) <= {None, "centre70"} and "centre70" in groups
    assert sum(len(g) for g in groups.values()) == len(qv) - 1
    for key, rows in groups.items():
        expected = [h for n, h in zip(names, qv.hashes[1:]) if (n.partition("/")[2] or None) == key]
        assert np.array_equal(rows, np.stack(expected))
    # the rotated frames are windows only (their corners are lost), the photo box is whole too
    assert not any(n.startswith("rot") and "/" not in n for n in names)
    assert all(n.split("/")[0] in ("whole", "border", "box") or n.startswith("rot") for n in names)


def test_rotated_windows_come_from_the_part_of_the_picture_they_need():
    """Windows of a counter-rotation cut from a rotated centred part of the picture carry the
    pixels of the whole picture rotated, up to nearest-neighbour ties (a pixel here and there
    sampled from its neighbour: under 0.5 % of them); their hashes stay far inside the radius."""
    from ncii_hash.hashes import hamming

    for h, w, seed in ((240, 320, 7), (600, 900, 1), (1001, 700, 2), (513, 513, 3)):
        pixels = _photo(h, w, seed)
        qv = v.query_variants(pixels, v.WINDOW_VARIANTS)
        luma = v.working_luma(pixels)
        for deg in v.WINDOW_VARIANTS.rotations:
            turned = v.rotate_luma(luma, deg)
            t, b, l, r = v.window_box(turned.shape[1], turned.shape[0], 0.7)
            part, (dy, dx) = v._rotation_source(luma, v.WINDOW_SETS["centre70"], deg)
            assert part.shape[0] < luma.shape[0] and part.shape[1] < luma.shape[1]  # less to rotate
            mine = v.rotate_luma(part, deg, fill=0)[t - dy:b - dy, l - dx:r - dx]
            assert mine.shape == (b - t, r - l)
            assert (mine != turned[t:b, l:r]).mean() < 0.005
            whole_way, _, _ = v.core_pdq_hash(np.ascontiguousarray(turned[t:b, l:r]), False)
            assert hamming(whole_way, qv.hashes[qv.names.index(f"rot{deg:+g}/centre70")]) <= 10
