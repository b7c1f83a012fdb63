"""Measure the MTCNN face detector on the 43 dev faces: recall at IoU 0.5 and 0.3, false positives,
five-point error (mean point distance / distance between the eye centres) against the dev points.

Usage: python scripts/eval_detector.py [--json]
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.annotators.mtcnn import MTCNN  # noqa: E402
from app.models.eval_detector import evaluate  # noqa: E402


def main(argv=None) -> int:
    """Print the detector's numbers on the dev faces."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)
    r = evaluate(MTCNN())
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"dev faces: {r['faces']} on {r['images']} images; detections: {r['detections']}")
    for t in (0.5, 0.3):
        print(
            f"IoU {t}: recall {r[f'recall@{t}']:.3f} ({round(r[f'recall@{t}'] * r['faces'])}/{r['faces']}), "
            f"unmatched detections {r[f'false_positives@{t}']}"
        )
    print(
        f"5 points: NME {r['five_point_nme']:.4f} (max {r['five_point_nme_max']:.4f}) on {r['five_point_faces']} matched faces"
        " (mean distance / eye-centre distance; dev points from dlib's 68: eye centres, 30, 48, 54)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
