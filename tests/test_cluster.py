"""bulk-annotate --engine ray on a local Ray instance (2 CPUs): the same annotations as the local engine,
resumable after a failure without duplicates, and images read by the actors from S3 (moto server)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from app.bulk.local import bulk_annotate
from app.db import now
from app.imports.demo import build_demo
from app.paths import REPO_ROOT
from tests.conftest import DEMO_DATA
from tests.test_storage import aws_env, bucket, moto_url, s3  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


def _ray_pids() -> set[int]:
    """Processes of a Ray instance on this machine (raylet, gcs_server, workers), by /proc."""
    pids = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if b"raylet" in cmd or b"gcs_server" in cmd or b"ray::" in cmd or b"default_worker.py" in cmd:
            pids.add(int(d))
    return pids


@pytest.fixture
def local_ray():
    """A Ray instance with 2 CPUs, started for the test and shut down after it, leaving no process."""
    import ray

    before = _ray_pids()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
    deadline = time.monotonic() + 20
    while (left := _ray_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"Ray left processes behind: {sorted(left)}"


def _by_image(db, set_id):
    out: dict[str, list] = {}
    for r in db.query(
        "SELECT image_id, x0, y0, x1, y1, score, points, parent_id FROM annotations WHERE set_id = ? ORDER BY id",
        [set_id],
    ):
        out.setdefault(r["image_id"], []).append(r)
    return out


def _same_annotations(db, local_set, ray_set, kind, min_images=5):
    a, b = _by_image(db, local_set), _by_image(db, ray_set)
    assert sorted(a) == sorted(b) and len(a) >= min_images
    for image_id in a:
        assert len(a[image_id]) == len(b[image_id]), image_id
        for x, y in zip(a[image_id], b[image_id], strict=True):
            np.testing.assert_allclose(
                [x["x0"], x["y0"], x["x1"], x["y1"]], [y["x0"], y["y0"], y["x1"], y["y1"]], atol=1e-4
            )
            if x["score"] is not None:
                assert y["score"] == pytest.approx(x["score"], abs=1e-4)
            if kind != "face_box":
                np.testing.assert_allclose(json.loads(x["points"]), json.loads(y["points"]), atol=2e-3)
                assert (x["parent_id"] is None) == (y["parent_id"] is None)


def test_ray_engine_matches_local_and_resumes(app, db, tmp_path, aws_env, s3, bucket, moto_url, local_ray):  # noqa: F811
    build_demo(db, boxes_source="model")  # no human boxes: bulk-annotate takes all ten photos
    local = bulk_annotate(db, app.config, "face_landmarks68", batch=4, progress=False)
    assert local["status"] == "done" and local["images"] == 10

    def crash(done):
        raise RuntimeError("node lost")

    opts = {"actor_cpus": 0.5}
    with pytest.raises(RuntimeError, match="node lost"):
        bulk_annotate(
            db,
            app.config,
            "face_landmarks68",
            batch=4,
            progress=False,
            on_batch=crash,
            engine="ray",
            engine_options=opts,
        )
    run_id, status, progress = db.execute(
        "SELECT id, status, progress FROM runs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert status == "failed" and progress == 4

    resumed = bulk_annotate(db, app.config, resume=run_id, progress=False, engine="ray", engine_options=opts)
    assert resumed["status"] == "done" and resumed["images"] == 10 and resumed["images_this_session"] == 6
    assert resumed["engine"] == "ray" and resumed["errors"] == 0
    for role, kind in (("box", "face_box"), ("points", "face_landmarks68")):
        assert resumed["sets"][role]["annotations"] == local["sets"][role]["annotations"]
        _same_annotations(db, local["sets"][role]["id"], resumed["sets"][role]["id"], kind)
    # Each landmark set's parent is a box of its own run.
    orphans = db.execute(
        "SELECT count(*) FROM annotations p JOIN annotations b ON b.id = p.parent_id"
        " WHERE p.set_id = ? AND b.set_id != ?",
        [resumed["sets"]["points"]["id"], resumed["sets"]["box"]["id"]],
    ).fetchone()[0]
    assert orphans == 0

    # Open Images rows (no path) read by the actors from S3 give what the local engine reads from disk.
    ids = ["0000000000000a01", "0000000000000a02", "0000000000000a03", "0000000000000a04"]
    folder = tmp_path / "oi" / "train"
    folder.mkdir(parents=True)
    for image_id, photo in zip(ids[:3], sorted(DEMO_DATA.glob("*.jpg"))[:3], strict=True):
        (folder / f"{image_id}.jpg").write_bytes(photo.read_bytes())
        s3.put_object(Bucket=bucket, Key=f"oi/train/{image_id}.jpg", Body=photo.read_bytes())
    db.conn.executemany(
        "INSERT INTO images (id, split, created_at) VALUES (?, 'train', ?)", [(i, now()) for i in ids]
    )
    db.conn.commit()
    listed = tmp_path / "ids.txt"
    listed.write_text("\n".join(ids))
    app.config.update(OPEN_IMAGES_DIR=str(tmp_path / "oi"), S3_ENDPOINT_URL=moto_url)
    disk = bulk_annotate(db, app.config, "face_box", images_file=str(listed), progress=False)
    from_s3 = bulk_annotate(
        db,
        app.config,
        "face_box",
        images_file=str(listed),
        progress=False,
        engine="ray",
        engine_options=opts | {"s3_images": f"s3://{bucket}/oi"},
    )
    assert disk["images"] == from_s3["images"] == 4 and disk["errors"] == from_s3["errors"] == 1
    assert "NoSuchKey" in from_s3["error_samples"][0] and ids[3] in from_s3["error_samples"][0]
    assert disk["sets"]["box"]["annotations"] == from_s3["sets"]["box"]["annotations"] > 0
    _same_annotations(db, disk["sets"]["box"]["id"], from_s3["sets"]["box"]["id"], "face_box", 3)


def test_ray_engine_from_the_command_line_ends_cleanly(app, db):
    """The CLI starts and stops its own Ray; its end prints no "Ray is not initialized" traceback."""
    build_demo(db)
    before = _ray_pids()
    env = dict(
        os.environ,
        OIAP_INSTANCE=app.instance_path,
        OIAP_DATABASE=app.config["DATABASE"],
        OIAP_SECRET_KEY="test",
        FLASK_APP="app",
    )
    out = subprocess.run(
        [sys.executable, "-m", "flask", "oiap", "bulk-annotate", "--engine", "ray", "--workers", "1"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "run 1 done: 10/10 images" in out.stdout
    assert "Ray is not initialized" not in text and "Traceback" not in text
    deadline = time.monotonic() + 20
    while (left := _ray_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"Ray left processes behind: {sorted(left)}"
