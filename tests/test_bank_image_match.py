"""HashBank.match_images / match_image: the one two-stage image match (PDQ, then local
features for the images PDQ missed), checked against the algorithm the ``ncii-hash match``
command used before it moved into the bank (kept below as the oracle), on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

pytest.importorskip("cv2")

from ncii_hash import ImageError, ImageMatchReport, pdq_hash, pdq_hash_many  # noqa: E402
from ncii_hash.bank import HashBank  # noqa: E402
from ncii_hash.features import image_features, query_features  # noqa: E402
from ncii_hash.image import load_pixels  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PDQ_DATA = ROOT / "tests" / "data" / "pdq" / "data"
PHOTO = ROOT / "examples" / "survivor" / "IMG_0001.jpg"
PHOTO2 = ROOT / "examples" / "survivor" / "IMG_0002.jpg"
LABELME = [PDQ_DATA / "reg-test-input" / "labelme-subset" / f"{n}.jpg" for n in ("q2821", "q0004", "q0122")]
BRIDGE = PDQ_DATA / "bridge-mods"


def old_cli_match(bank, paths, *, radius=31, dihedral=True, trim_borders=True, features=True, threads=0):
    """cmd_match + _feature_stage of the CLI before match_images existed (the oracle):
    {image index: (quality, pdq records, feature records)} and {image index: error}."""
    batch = pdq_hash_many([str(f) for f in paths], dihedral=True, threads=threads, trim_borders=trim_borders)
    ok = [i for i in range(len(paths)) if i not in batch.errors]
    owners = list(ok)
    sets = [batch.dihedral[ok]]
    if batch.has_trimmed is not None:
        extra = [i for i in ok if batch.has_trimmed[i]]
        owners += extra
        sets.append(batch.trimmed[extra])
    queries = np.concatenate(sets)
    if not dihedral:
        queries = queries[:, 0, :]
    found = bank.match(queries, radius, dihedral=dihedral) if ok else []
    per_image: dict = {}
    for m in found:
        best = per_image.setdefault(owners[m.query], {})
        if m.hash_id not in best or m.distance < best[m.hash_id].distance:
            best[m.hash_id] = m
    missed = [i for i in ok if i not in per_image]
    feature_hits: dict = {}
    used = False
    if features and missed and bank.feature_count() > 0:
        used = True
        fq, fowners = [], []
        for i in missed:
            s = query_features(load_pixels(str(paths[i])))
            fq += s
            fowners += [i] * len(s)
        best_f: dict = {}
        for m in bank.match_features(fq, threads=threads):
            key = (fowners[m.query], m.feature_id)
            if key not in best_f or m.inliers > best_f[key].inliers:
                best_f[key] = m
        for (i, _), m in sorted(best_f.items(), key=lambda t: (t[0][0], -t[1].inliers, t[0][1])):
            feature_hits.setdefault(i, []).append(
                {"case_id": m.case_id, "feature_id": m.feature_id, "inliers": m.inliers, "spread": m.spread,
                 "scale": m.scale, "rotation_degrees": m.rotation_degrees})
    out = {}
    for i in ok:
        ms = sorted(per_image.get(i, {}).values(), key=lambda m: (m.distance, m.hash_id))
        out[i] = (int(batch.qualities[i]), [(m.case_id, m.hash_id, m.distance, m.variant) for m in ms],
                  feature_hits.get(i, []))
    return out, {i: e.reason for i, e in batch.errors.items()}, used


def as_old_records(reports):
    out, errors = {}, {}
    for i, r in enumerate(reports):
        if r.error is not None:
            assert r.quality == -1 and r.pdq == () and r.features == () and not r.features_checked
            errors[i] = r.error.reason
            continue
        assert all(m.query == i for m in r.pdq) and all(f.query == i for f in r.features)
        out[i] = (r.quality, [(m.case_id, m.hash_id, m.distance, m.variant) for m in r.pdq],
                  [{"case_id": f.case_id, "feature_id": f.feature_id, "inliers": f.inliers, "spread": f.spread,
                    "scale": f.scale, "rotation_degrees": f.rotation_degrees} for f in r.features])
    return out, errors


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A bank of real photos (two with feature sets) and queries: copies edited so that each
    stage has something to find, unrelated photos, and a file that is not an image."""
    folder = tmp_path_factory.mktemp("scene")
    photo = Image.open(PHOTO).convert("RGB")
    bank = HashBank(folder / "bank.db")
    cases = {}
    for p in [PHOTO, LABELME[0], LABELME[1], BRIDGE / "square-128x128.jpg"]:
        r = pdq_hash(p)
        feats = [image_features(p)] if p in (PHOTO, LABELME[0]) else []
        cases[p.name] = bank.add_case([r.hash], [max(r.quality, 50)], allow_low_quality=True, features=feats)
    w, h = photo.size
    queries = {
        "mirrored.png": ImageOps.mirror(Image.open(LABELME[0]).convert("RGB")),  # PDQ, a dihedral variant
        "letterboxed.png": ImageOps.expand(Image.open(LABELME[1]).convert("RGB"), border=(0, 60), fill=(0, 0, 0)),
        "cropped-rotated.png": photo.crop((int(w * 0.12), 0, w, int(h * 0.9))).rotate(-4, resample=Image.BILINEAR),
        "unrelated.png": Image.open(PHOTO2).convert("RGB"),
    }
    paths = []
    for name, im in queries.items():
        im.save(folder / name)
        paths.append(folder / name)
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    paths += [broken, BRIDGE / "shrink-a-lot.jpg", LABELME[2]]
    yield bank, paths, cases
    bank.close()


@pytest.mark.parametrize("dihedral", [True, False])
@pytest.mark.parametrize("trim_borders", [True, False])
@pytest.mark.parametrize("features", [True, False])
def test_match_images_equals_the_old_cli_match(scene, dihedral, trim_borders, features):
    bank, paths, cases = scene
    want, want_errors, used = old_cli_match(bank, paths, dihedral=dihedral, trim_borders=trim_borders,
                                            features=features)
    reports = bank.match_images([str(p) for p in paths], dihedral=dihedral, trim_borders=trim_borders,
                                features=features)
    assert len(reports) == len(paths) and all(isinstance(r, ImageMatchReport) for r in reports)
    got, got_errors = as_old_records(reports)
    assert got == want
    assert got_errors == want_errors and list(got_errors) == [paths.index(paths[4])]
    assert any(r.features_checked for r in reports) == used
    # the scene exercises every path only when both robust options are on
    if dihedral and trim_borders and features:
        by_name = {Path(p).name: r for p, r in zip(paths, reports)}
        assert by_name["mirrored.png"].pdq[0].variant != 0
        assert [c.case_id for c in by_name["mirrored.png"].cases()] == [cases[LABELME[0].name]]
        assert [c.case_id for c in by_name["letterboxed.png"].cases()] == [cases[LABELME[1].name]]
        cr = by_name["cropped-rotated.png"]
        assert cr.pdq == () and cr.features_checked and cr.matched
        assert [c.case_id for c in cr.cases()] == [cases[PHOTO.name]] and cr.cases()[0].via == "local features"
        assert by_name["shrink-a-lot.jpg"].cases()[0].case_id == cases["square-128x128.jpg"]
        assert not by_name["unrelated.png"].matched and by_name["unrelated.png"].features_checked
        assert not by_name["mirrored.png"].features_checked  # PDQ found it: no second stage


def test_match_images_plain_hash_misses_what_the_robust_options_find(scene):
    bank, paths, cases = scene
    plain = bank.match_images(paths[:2], dihedral=False, trim_borders=False, features=False)
    assert [r.matched for r in plain] == [False, False]
    robust = bank.match_images(paths[:2])
    assert [r.matched for r in robust] == [True, True]


def test_match_image_is_the_first_report_cases(scene):
    bank, paths, cases = scene
    for p in paths[:4] + paths[5:]:
        assert bank.match_image(p) == bank.match_images([p])[0].cases()
        assert bank.match_image(p, features=False) == bank.match_images([p], features=False)[0].cases()
    with pytest.raises(ImageError, match="broken.jpg"):
        bank.match_image(paths[4])


def test_match_images_takes_arrays_bytes_and_reports_progress(scene):
    bank, paths, _ = scene
    seen = []
    mixed = [np.asarray(Image.open(paths[0]).convert("RGB")), Path(paths[1]).read_bytes(), b"junk"]
    reports = bank.match_images(mixed, progress=lambda done, total: seen.append((done, total)))
    assert sorted(seen) == [(1, 3), (2, 3), (3, 3)]
    assert reports[0].cases() == bank.match_images([paths[0]])[0].cases()
    assert reports[1].cases() == bank.match_images([paths[1]])[0].cases()
    assert reports[2].error is not None and reports[2].quality == -1
    assert bank.match_images([]) == []
    with pytest.raises(TypeError, match="list of images"):
        bank.match_images(str(paths[0]))


def test_empty_bank_matches_nothing_and_skips_features(tmp_path):
    with HashBank(tmp_path / "b.db") as bank:
        (r,) = bank.match_images([PHOTO])
        assert r.quality > 50 and r.error is None and not r.matched and not r.features_checked
        assert r.cases() == []
