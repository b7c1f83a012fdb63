"""Derive app/annotators/data/mean_face_68.json from SPIGA's BSD-3 mean_face_3D_68.txt.

Usage: pip download --no-deps spiga==0.0.6; unzip the wheel; then
    python scripts/derive_mean_face68.py spiga/data/models3D/mean_face_3D_68.txt
"""

import json
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "app" / "annotators" / "data" / "mean_face_68.json"

# SPIGA's landmark ids in iBUG 300-W order, copied from spiga/data/annotations/300wpublic/db_info.json
# ("ldm_ids"): position i of this list is iBUG point i; the first column of the .txt is the id.
SPIGA_300W_IDS = [
    101, 102, 103, 104, 105, 106, 107, 108, 24, 110, 111, 112, 113, 114, 115, 116, 117,
    1, 119, 2, 121, 3, 4, 124, 5, 126, 6,
    128, 129, 130, 17, 16, 133, 134, 135, 18,
    7, 138, 139, 8, 141, 142, 11, 144, 145, 12, 147, 148,
    20, 150, 151, 22, 153, 154, 21, 156, 157, 23, 159, 160, 161, 162, 163, 164, 165, 166, 167, 168,
]  # fmt: skip


def derive(txt_path: str) -> dict:
    """Read the 3D mean face, reorder rows to iBUG order, project frontally with image y pointing down."""
    ids = np.genfromtxt(txt_path, delimiter="|", dtype=int, usecols=0).tolist()
    xyz = np.genfromtxt(txt_path, delimiter="|", dtype=float, usecols=(1, 2, 3))
    rows = [ids.index(i) for i in SPIGA_300W_IDS]
    pts = xyz[rows]
    # The file has x towards image right (the subject's left) and y up; a frontal orthographic
    # projection drops z and flips y so that y points down as in images.
    xy = np.stack([pts[:, 0], -pts[:, 1]], axis=1)
    return {
        "source": "spiga 0.0.6 (PyPI), spiga/data/models3D/mean_face_3D_68.txt, BSD-3-Clause",
        "derivation": "rows reordered to iBUG 300-W order by SPIGA's 300W ldm_ids; x kept, y negated, z dropped",
        "points": [[round(float(x), 6), round(float(y), 6)] for x, y in xy],
    }


if __name__ == "__main__":
    data = derive(sys.argv[1])
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT} ({len(data['points'])} points)")
