"""scripts/bench_annotate.py end to end on a few images: its last lines give both ratios against the
original pipeline and the faces found against the reference boxes, per bulk run."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.paths import REPO_ROOT

pytestmark = pytest.mark.slow
PREDICTOR = Path("/usr/share/dlib/shape_predictor_68_face_landmarks.dat")


def _bench(*args: str) -> list[str]:
    pytest.importorskip("dlib")
    if not PREDICTOR.is_file():
        pytest.skip("Debian's libdlib-data is not installed (make test installs it)")
    out = subprocess.run(
        [sys.executable, "scripts/bench_annotate.py", "-n", "4", "--tiles", "1", "--naive-n", "1", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip().splitlines()


def test_68_chain_two_engines_against_the_original():
    lines = _bench("--kind", "face_landmarks68", "--engine", "local,process@40")
    ratio = r"ours \({}\) vs original: [\d.]+x images/s .*, [\d.]+x images per CPU-second; faces found (\d+) vs (\d+) of (\d+)"
    for name, line in zip(("local", "process@40"), lines[-2:], strict=True):
        m = re.fullmatch(ratio.format(re.escape(name)), line)
        assert m, line
        ours, orig, ref = map(int, m.groups())
        # Four photos of the dev set: about five faces each, most found by both detectors.
        assert ref >= 15 and ours >= 0.8 * ref and orig >= 0.8 * ref
    assert any(line.startswith("68-point shapes: ours (local ") for line in lines)


def test_given_boxes():
    lines = _bench("--boxes-from", "openimages-human-face", "--engine", "process")
    m = re.fullmatch(r"ours \(process\) vs original: .*faces found (\d+) vs (\d+) of (\d+)", lines[-1])
    assert m and len(set(m.groups())) == 1, lines[-1]
    assert "68-point predictor on the given boxes" in "\n".join(lines)


def test_face_box_and_what_auto_chose():
    lines = _bench("--kind", "face_box", "--engine", "auto")
    # Four images to do: auto runs them on threads, and says so.
    m = re.fullmatch(
        r"ours \(auto:local\) vs original: [\d.]+x images/s .*, [\d.]+x images per CPU-second; "
        r"faces found (\d+) vs (\d+) of (\d+)",
        lines[-1],
    )
    assert m, lines[-1]
    ours, orig, ref = map(int, m.groups())
    assert ref >= 15 and ours >= 0.8 * ref and orig >= 0.8 * ref
