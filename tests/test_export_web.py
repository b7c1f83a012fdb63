"""The export page: admins download streamed files; reviewers get 403."""

import csv
import io
import zipfile

import pytest

from tests.test_export_csv import KIND, build
from tests.test_export_merge import A


def test_export_page_lists_sets_for_admins(admin_client, db):
    build(db)
    page = admin_client.get("/export/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="kind"' in html and 'value="dlib-xml"' in html and "human-lm" in html


def test_download_streams_csv_with_content_disposition(admin_client, db):
    ids = build(db)
    resp = admin_client.get(f"/export/download?kind={KIND}&format=csv&split=train&unrated=0&unrated=1")
    assert resp.status_code == 200
    assert resp.is_streamed
    assert resp.headers["Content-Disposition"] == f'attachment; filename="oiap-{KIND}-train-csv.csv"'
    assert resp.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["annotation_id"] for r in rows] == [str(ids["h"]), str(ids["good"]), str(ids["unrated"])]
    # The form's hidden unrated=0 alone (box unticked) leaves unrated rows out; so do chosen sets.
    resp = admin_client.get(f"/export/download?kind={KIND}&format=csv&unrated=0&sets=model,lm")
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["source"] for r in rows] == ["machine_good"]


def test_download_yolo_pose_zip_and_refusals(admin_client, db):
    build(db)
    resp = admin_client.get(f"/export/download?kind={KIND}&format=yolo-pose")
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.get_data())) as zf:
        assert f"labels/train/{A}.txt" in zf.namelist()
        assert "kpt_shape: [68, 3]" in zf.read("data.yaml").decode()
    assert admin_client.get(f"/export/download?kind={KIND}&format=csv&split=train,test").status_code == 400
    assert admin_client.get(f"/export/download?kind={KIND}&format=csv&sets=nope").status_code == 400
    assert admin_client.get("/export/download?kind=nope&format=csv").status_code == 400


def test_reviewers_get_403(reviewer_client, db):
    build(db)
    assert reviewer_client.get("/export/").status_code == 403
    assert reviewer_client.get(f"/export/download?kind={KIND}&format=csv").status_code == 403


def test_anonymous_is_sent_to_login(client):
    assert client.get("/export/download?kind=face_box&format=csv").status_code == 302


@pytest.mark.slow
def test_bench_script_runs_small(tmp_path):
    import subprocess
    import sys

    from app.paths import REPO_ROOT

    script = REPO_ROOT / "scripts" / "bench_export.py"
    assert (
        "usage" in subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True).stdout
    )
    out = subprocess.run([sys.executable, script, "-n", "500"], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[-1].startswith("export/baseline ratio:") and "warning" not in out.stdout
    counts = [line.split()[1] for line in lines[1:3]]
    assert counts[0] == counts[1] and int(counts[0].replace(",", "")) > 300
