"""How these files were made: run once with ncii_hash 0.1.0 at commit 38e2989, before the package
layout change, from the repository root: `python tests/data/legacy/make_legacy.py tests/data/legacy`.
Kept for the record; it imports modules that no longer exist (ncii_hash.formats)."""
import json, os, shutil, sys
from pathlib import Path
import numpy as np
import ncii_hash as nh
from ncii_hash.bank import HashBank
from ncii_hash.formats import make_submission, write_submission, video_item

out = Path(sys.argv[1]); out.mkdir(exist_ok=True)
for p in out.iterdir(): p.unlink()
rng = np.random.default_rng(20261201)
img = "tests/data/pdq/data/reg-test-input/labelme-subset/q2821.jpg"
img2 = "tests/data/pdq/data/reg-test-input/labelme-subset/q0122.jpg"
codes = rng.integers(0, 256, (40, 32), dtype=np.uint8)
quals = rng.integers(50, 101, 40).astype(np.int32)
fs = nh.image_features(img)
res = nh.pdq_hash(img)
bank = HashBank(out / "bank-v3.db")
c1 = bank.add_case(codes[:20], quals[:20], case_id="case-a")
c2 = bank.add_case(codes[20:30], quals[20:30], case_id="case-withdrawn")
vframes = rng.integers(0, 256, (6, 32), dtype=np.uint8)
c3 = bank.add_case(codes[30:], quals[30:], videos=[(vframes, np.full(6, 90), "0" * 32)], case_id="case-video")
c4 = bank.add_case(res.hash[None], [res.quality], features=[fs], case_id="case-features")
bank.withdraw("case-withdrawn")
bank.match_features([fs])  # loads the feature index so close() snapshots it
bank.close()
idx = nh.HashIndex()
idx.add(codes, np.arange(100, 140))
idx.remove([105, 106])
idx.save(out / "index-v1.idx")
fidx = nh.FeatureIndex()
fidx.add([7, 9], [fs, nh.image_features(img2)])
fidx.save(out / "feature-index-v1.fidx")
sub1 = make_submission(codes[:3], quals[:3], videos=[video_item(vframes, [90] * 6, "1" * 32)])
write_submission(out / "submission-v1.json", sub1)
sub2 = make_submission(codes[3:5], quals[3:5], features=[fs])
write_submission(out / "submission-v2.json", sub2)
q = np.concatenate([codes[[0, 25, 35]], res.hash[None]])
bq = HashBank(out / "bank-v3.db", create=False)
bank_matches = [[m.query, m.case_id, m.hash_id, m.distance] for m in bq.match(q, 31, dihedral=False)]
bstats = bq.stats()
bq.close(save_snapshot=False)
r = nh.HashIndex.load(out / "index-v1.idx").range_search(codes[:10], 31)
expected = {
    "made_by": "ncii_hash 0.1.0 at commit 38e2989 (before the subpackage layout)",
    "bank": {"cases": bstats.cases, "hashes": bstats.hashes, "change_seq": bstats.change_seq,
             "feature_sets": bstats.feature_sets, "queries": nh.to_hex(q), "matches": bank_matches},
    "index": {"len": 38, "queries": nh.to_hex(codes[:10]), "lims": r.lims.tolist(), "ids": r.ids.tolist(),
              "distances": r.distances.tolist()},
    "feature_index": {"ids": [7, 9], "query_image": os.path.basename(img)},
    "submission_v1": {"hashes": nh.to_hex(codes[:3]), "video_frames": 6},
    "submission_v2": {"hashes": nh.to_hex(codes[3:5]), "feature_sets": 1},
}
(out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
print(sorted(p.name for p in out.iterdir()))
