"""push / fetch / download-images against a real S3 API over HTTP: moto's server in a subprocess."""

import gzip
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import boto3
import pytest

from app.annotations.rows import annotation_row, insert_annotation, rate, undo_last_rating
from app.db import connect
from app.models.builtin import ensure_builtin_models, verified_files
from app.models.registry import get_model, model_path, register_model, sha256_file
from app.sets.queries import create_set
from tests.conftest import DEMO_DATA
from tests.live import instance_app

IDS = ["000002b66c9c498e", "000002b97e5471a0", "00000c4a1d3e3b2f", "0a1b2c3d4e5f6789"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_url():
    """moto's S3 server on a free local port, for the whole test session."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/data.json", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Fake credentials in the environment, and no ~/.aws files or instance metadata to fall back on."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def s3(moto_url, aws_env):
    """A raw client on the moto server, for the tests' own checks."""
    return boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")


@pytest.fixture
def bucket(s3):
    """A fresh bucket per test."""
    name = f"oiap-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def make_app(tmp_path, name, **config):
    """An instance with the schema and the two test users."""
    return instance_app(tmp_path / name, S3_MAX_ATTEMPTS=1, **config)


def _tiny_onnx(path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "tiny", [x], [y])
    onnx.save(helper.make_model(graph), path)


def seed(app, tmp_path):
    """Two models (one the other's parent), three linked sets, ratings with history, a deleted row."""
    db = connect(app.config["DATABASE"])
    users = {r["username"]: r["id"] for r in db.query("SELECT id, username FROM users")}
    for i, image_id in enumerate(IDS):
        db["images"].insert(
            {
                "id": image_id,
                "split": "validation" if i == 3 else "train",
                "width": 640 + i,
                "height": 480,
                "created_at": "2026-01-01T00:00:00.000+00:00",
                # A photo shipped with the code (relative: the same on every checkout), one from a local folder.
                "path": {1: "/srv/photos/one.jpg", 2: "app/demo_data/2007_007763.jpg"}.get(i),
            }
        )
    onnx_path = tmp_path / "tiny.onnx"
    _tiny_onnx(onnx_path)
    parent = register_model(
        db,
        onnx_path,
        "face_box",
        name="tiny",
        models_dir=app.config["MODELS_DIR"],
        params={"input": 320},
        metrics={"test": {"ap50": 0.5}},
        licence="MIT",
    )
    child_file = tmp_path / "child.onnx"
    child_file.write_bytes(onnx_path.read_bytes() + b"\0")
    # A trained model keeps its torch checkpoint beside it, for warm starts.
    ckpt = tmp_path / "child.pt"
    ckpt.write_bytes(b"torch checkpoint bytes")
    model = register_model(
        db,
        child_file,
        "face_box",
        name="tiny-2",
        models_dir=app.config["MODELS_DIR"],
        parent_id=parent,
        source="trained",
        version="2",
        params={
            "runner": "landmarks68:crop68",
            "checkpoint": {"path": str(ckpt), "sha256": sha256_file(ckpt)},
        },
    )
    # A fine-tuned MTCNN: three files (ONet's is the row's), one row per kind it gives, a builtin parent.
    builtin = ensure_builtin_models(db)
    ft = tmp_path / "ft"
    ft.mkdir()
    files = {}
    for net in ("pnet", "rnet", "onet"):
        (ft / f"{net}.onnx").write_bytes(onnx_path.read_bytes() + net.encode())
        files[net] = {"path": str(ft / f"{net}.onnx"), "sha256": sha256_file(ft / f"{net}.onnx")}
    for kind in ("face_box", "face_landmarks5"):
        register_model(
            db,
            ft / "onet.onnx",
            kind,
            name="mtcnn-ft",
            source="trained",
            models_dir=app.config["MODELS_DIR"],
            params={"runner": "mtcnn", "files": {"pnet": files["pnet"], "rnet": files["rnet"]}},
            parent_id=builtin[f"mtcnn:{kind}"],
        )
    boxes = create_set(db, "model-face_box-1", "face_box", "model", model_id=model, params={"threshold": 0.5})
    box_ids = [
        insert_annotation(
            db,
            annotation_row(
                boxes,
                image_id,
                "face_box",
                (0.1, 0.2, 0.3 + i / 10, 0.4),
                label="/m/0dzct",
                score=0.9 - i / 10,
                flags={"IsOccluded": i % 2},
            ),
        )
        for i, image_id in enumerate(IDS)
    ]
    lm = create_set(db, "model-face_landmarks5-1", "face_landmarks5", "model", model_id=model)
    lm_ids = [
        insert_annotation(
            db,
            annotation_row(
                lm,
                IDS[i],
                "face_landmarks5",
                None,
                [[0.1 + j / 100, 0.2, 1] for j in range(5)],
                parent_id=box_ids[i],
                score=0.7,
            ),
        )
        for i in range(2)
    ]
    human = create_set(db, "human-face_box", "face_box", "human", created_by=users["rev"])
    h1 = insert_annotation(
        db,
        annotation_row(
            human,
            IDS[0],
            "face_box",
            (0.11, 0.2, 0.3, 0.41),
            label="/m/0dzct",
            origin_id=box_ids[0],
            created_by=users["rev"],
        ),
    )
    insert_annotation(
        db, annotation_row(human, IDS[1], "face_box", (0.5, 0.5, 0.6, 0.6), created_by=users["rev"])
    )
    # Ratings with history: good, bad, one undone back to unrated, one changed.
    rate(db, box_ids[0], users["rev"], "bad")
    rate(db, box_ids[1], users["rev"], "good")
    rate(db, box_ids[2], users["admin"], "good")
    rate(db, box_ids[2], users["admin"], "bad")
    rate(db, lm_ids[0], users["admin"], "good")
    rate(db, lm_ids[1], users["admin"], "bad")
    undo_last_rating(db, users["admin"])
    rate(db, h1, users["admin"], "good")
    db.execute("UPDATE annotations SET deleted = 1, version = 2 WHERE id = ?", [box_ids[3]])
    db.close()


def snapshot(app) -> dict:
    """Everything push/fetch must carry, keyed by stable names instead of local ids."""
    db = connect(app.config["DATABASE"])
    user = {r["id"]: r["username"] for r in db.query("SELECT id, username FROM users")}
    user[None] = None
    model_sha = {r["id"]: r["sha256"] for r in db.query("SELECT id, sha256 FROM models")}
    model_sha[None] = None
    sets = {r["id"]: r for r in db.query("SELECT * FROM annotation_sets")}
    pos = {}
    for set_id in sets:
        for i, r in enumerate(db.query("SELECT id FROM annotations WHERE set_id = ? ORDER BY id", [set_id])):
            pos[r["id"]] = [sets[set_id]["name"], i]
    pos[None] = None
    out = {"sets": {}, "models": {}, "images": {}}
    for m in db.query("SELECT * FROM models"):
        data = model_path(m).read_bytes()
        params = json.loads(m["params"])
        # Extra files (MTCNN's) live at each instance's own paths: compare their hashes and bytes.
        for f in [
            *params.get("files", {}).values(),
            *([params["checkpoint"]] if "checkpoint" in params else []),
        ]:
            f["path"] = model_path(f).read_bytes()
        out["models"][(m["kind"], m["sha256"])] = {
            "kind": m["kind"],
            "name": m["name"],
            "version": m["version"],
            "params": params,
            "metrics": m["metrics"],
            "licence": m["licence"],
            "parent": model_sha[m["parent_id"]],
            "bytes": data,
        }
    for r in db.query("SELECT id, split, width, height, path FROM images"):
        out["images"][r["id"]] = r
    for set_id, s in sets.items():
        params = json.loads(s["params"] or "{}")
        params = {k: v for k, v in params.items() if not k.startswith("s3_")}
        anns = []
        for a in db.query("SELECT * FROM annotations WHERE set_id = ? ORDER BY id", [set_id]):
            history = [
                (user[h["user_id"]], h["value"], h["previous"], h["at"])
                for h in db.query("SELECT * FROM ratings WHERE annotation_id = ? ORDER BY id", [a["id"]])
            ]
            anns.append(
                {
                    **{
                        k: a[k]
                        for k in (
                            "image_id",
                            "kind",
                            "label",
                            "x0",
                            "y0",
                            "x1",
                            "y1",
                            "points",
                            "score",
                            "flags",
                            "created_at",
                            "version",
                            "deleted",
                            "rating",
                            "rated_at",
                        )
                    },
                    "created_by": user[a["created_by"]],
                    "rated_by": user[a["rated_by"]],
                    "parent": pos[a["parent_id"]],
                    "origin": pos[a["origin_id"]],
                    "history": history,
                }
            )
        out["sets"][s["name"]] = {
            **{
                k: s[k]
                for k in ("kind", "source", "label", "status", "created_at", "n_total", "n_good", "n_bad")
            },
            "created_by": user[s["created_by"]],
            "model": model_sha[s["model_id"]],
            "params": params,
            "annotations": anns,
        }
    db.close()
    return out


def cli(app, *args):
    return app.test_cli_runner().invoke(args=["oiap", *args])


def objects(s3, bucket) -> dict:
    return {
        o["Key"]: (o["ETag"], o["LastModified"])
        for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    }


@pytest.mark.slow
def test_push_fetch_round_trip_and_idempotence(tmp_path, moto_url, s3, bucket):
    config = {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": moto_url, "S3_PREFIX": "team"}
    a = make_app(tmp_path, "a", **config)
    seed(a, tmp_path)

    dry = cli(a, "push", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would upload model tiny " in dry.output and "would upload set human-face_box" in dry.output
    assert objects(s3, bucket) == {}

    first = cli(a, "push", "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    # tiny, tiny-2 and its checkpoint, mtcnn-ft's three files (shared by its two rows), three sets;
    # builtins stay home.
    assert len(report["uploaded"]) == 9 and report["manifest"] == "updated"
    assert {i["name"] for i in report["skipped"]} == {
        "mtcnn",
        "template68",
        "facemesh68",
        "attention68",
        "nanodet",
        "objectron",
    } | {
        "mtcnn-ft",
        "mtcnn-ft (pnet)",
        "mtcnn-ft (rnet)",
    }
    stored = objects(s3, bucket)
    assert "team/manifest.json" in stored
    assert sum(k.startswith("team/models/") and k.endswith(".onnx") for k in stored) == 5
    assert sum(k.startswith("team/models/") and k.endswith(".pt") for k in stored) == 1
    assert sum(k.startswith("team/sets/") and k.endswith(".jsonl.gz") for k in stored) == 3
    manifest = json.loads(s3.get_object(Bucket=bucket, Key="team/manifest.json")["Body"].read())
    assert set(manifest["sets"]) == {"model-face_box-1", "model-face_landmarks5-1", "human-face_box"}
    assert manifest["sets"]["model-face_box-1"]["counts"] == {"total": 3, "good": 1, "bad": 2}
    # The set file: a header line with the metadata, then one line per annotation.
    body = s3.get_object(Bucket=bucket, Key=manifest["sets"]["model-face_box-1"]["key"])["Body"].read()
    lines = gzip.decompress(body).decode().splitlines()
    head = json.loads(lines[0])
    assert head["kind"] == "face_box" and head["model"]["name"] == "tiny-2" and head["n_lines"] == 4
    assert json.loads(lines[1])["ratings"][0]["user"] == "rev"

    db = connect(a.config["DATABASE"])
    assert db.execute("SELECT command, status FROM runs").fetchall() == [("push", "done")]  # not the dry run
    db.close()
    second = cli(a, "push")
    assert second.exit_code == 0, second.output
    assert " 0 uploaded, " in second.output and "manifest unchanged" in second.output
    assert objects(s3, bucket) == stored

    b = make_app(tmp_path, "b", **config)
    assert "would fetch set model-face_box-1" in cli(b, "fetch", "--dry-run").output
    assert snapshot(b)["sets"] == {}
    fetched = cli(b, "fetch")
    assert fetched.exit_code == 0, fetched.output
    assert "7 fetched, 0 skipped, 0 refused" in fetched.output
    sa, sb = snapshot(a), snapshot(b)
    assert sb["models"] == sa["models"]
    assert sb["sets"] == sa["sets"]
    # Absolute paths name files on A's disk only; they do not travel.
    assert sb["images"] == {
        k: {**v, "path": None if k == IDS[1] else v["path"]} for k, v in sa["images"].items()
    }
    assert sb["images"][IDS[2]]["path"] == "app/demo_data/2007_007763.jpg"
    db = connect(b.config["DATABASE"])
    assert {r["source"] for r in db.query("SELECT source FROM models")} == {"fetched", "builtin"}
    # The fetched MTCNN's three files are in this instance's models folder and pass the hash check.
    ft = db.execute("SELECT id FROM models WHERE name = 'mtcnn-ft' AND kind = 'face_box'").fetchone()[0]
    files = verified_files(get_model(db, ft))
    assert {p.parent for p in files.values()} == {(tmp_path / "b" / "models").resolve()}
    db.close()

    again = cli(b, "fetch")
    assert again.exit_code == 0 and "0 fetched, 7 skipped" in again.output
    assert snapshot(b) == sb
    # The fetched copy serialises to the same content: pushing it back moves nothing.
    back = cli(b, "push")
    assert back.exit_code == 0 and "0 uploaded" in back.output and "manifest unchanged" in back.output
    assert objects(s3, bucket) == stored

    # A new rating changes one set: only that set is uploaded again.
    db = connect(a.config["DATABASE"])
    ann = db.execute(
        "SELECT a.id FROM annotations a JOIN annotation_sets s ON s.id = a.set_id"
        " WHERE s.name = 'human-face_box' AND a.rating IS NULL"
    ).fetchone()[0]
    rate(db, ann, None, "good")
    db.close()
    third = json.loads(cli(a, "push", "--annotations", "--json").stdout)
    assert [u["name"] for u in third["uploaded"]] == ["human-face_box"]
    assert third["uploaded"][0]["replaces"] == manifest["sets"]["human-face_box"]["sha256"]
    # B's own work points into its copy: a correction of the copy's first row.
    db = connect(b.config["DATABASE"])
    rev = db.execute("SELECT id FROM users WHERE username = 'rev'").fetchone()[0]
    first = db.execute(
        "SELECT a.id FROM annotations a JOIN annotation_sets s ON s.id = a.set_id"
        " WHERE s.name = 'human-face_box' ORDER BY a.id LIMIT 1"
    ).fetchone()[0]
    mine = create_set(db, "b-corrections", "face_box", "human")
    insert_annotation(
        db, annotation_row(mine, IDS[0], "face_box", (0.1, 0.1, 0.2, 0.2), origin_id=first, created_by=rev)
    )
    db.close()
    # B's copy is unchanged since fetched: fetch replaces it with the owner's new version.
    later = cli(b, "fetch", "--annotations")
    assert later.exit_code == 0, later.output
    assert "fetch set human-face_box" in later.output and "1 fetched" in later.output
    sb = snapshot(b)
    assert sb["sets"].pop("b-corrections")["annotations"][0]["origin"] == ["human-face_box", 0]
    assert sb["sets"] == snapshot(a)["sets"]

    # Rated on B since fetched: A's next version is not forced over it, and B cannot push it.
    db = connect(b.config["DATABASE"])
    box = db.execute(
        "SELECT a.id FROM annotations a JOIN annotation_sets s ON s.id = a.set_id"
        " WHERE s.name = 'model-face_box-1' AND a.rating = 'bad' LIMIT 1"
    ).fetchone()[0]
    rate(db, box, rev, "good")
    db.close()
    db = connect(a.config["DATABASE"])
    db.execute("UPDATE annotation_sets SET status = 'closed' WHERE name = 'model-face_box-1'")
    db.close()
    # The boxes, and both sets whose links into them now name the new version.
    assert " 3 uploaded" in cli(a, "push", "--annotations").output
    later = cli(b, "fetch", "--annotations")
    assert "model-face_box-1: changed here since it was fetched (not overwritten)" in later.output
    pushed = cli(b, "push", "--annotations")
    assert "model-face_box-1: fetched from " in pushed.output and "changed here; only" in pushed.output

    # Another instance's own set of the same name never replaces the owner's in the manifest.
    c = make_app(tmp_path, "c", **config)
    db = connect(c.config["DATABASE"])
    create_set(db, "human-face_box", "face_box", "human")
    db.close()
    manifest_before = s3.get_object(Bucket=bucket, Key="team/manifest.json")["Body"].read()
    clash = cli(c, "push", "--annotations")
    assert "human-face_box: the bucket's 'human-face_box' belongs to " in clash.output
    assert s3.get_object(Bucket=bucket, Key="team/manifest.json")["Body"].read() == manifest_before
    owner = (tmp_path / "a" / "s3_instance_name").read_text().strip()
    assert json.loads(manifest_before)["sets"]["human-face_box"]["owner"] == owner


def test_push_only_named_sets(tmp_path, moto_url, s3, bucket):
    a = make_app(tmp_path, "a", S3_BUCKET=bucket, S3_ENDPOINT_URL=moto_url)
    seed(a, tmp_path)
    result = cli(a, "push", "--sets", "human-face_box", "--json")
    assert result.exit_code == 0, result.output
    assert [(u["what"], u["name"]) for u in json.loads(result.stdout)["uploaded"]] == [
        ("set", "human-face_box")
    ]
    bad = cli(a, "push", "--sets", "nope")
    assert bad.exit_code == 1 and "no annotation set named nope" in bad.output


def _files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_corrupt_objects_are_refused(tmp_path, moto_url, s3, bucket):
    config = {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": moto_url, "S3_PREFIX": ""}
    a = make_app(tmp_path, "a", **config)
    seed(a, tmp_path)
    assert cli(a, "push").exit_code == 0
    manifest = json.loads(s3.get_object(Bucket=bucket, Key="manifest.json")["Body"].read())
    # Someone overwrote a set with other (well-formed) content, and a model with other bytes.
    key = manifest["sets"]["human-face_box"]["key"]
    lines = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).decode().splitlines()
    lines[1] = lines[1].replace('"rating":"good"', '"rating":"bad"')
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(("\n".join(lines) + "\n").encode()))
    tiny = next(e for e in manifest["models"].values() if e["name"] == "tiny-2")
    s3.put_object(Bucket=bucket, Key=tiny["key"], Body=b"not the model")
    ft = next(e for e in manifest["models"].values() if e["name"] == "mtcnn-ft")
    s3.put_object(Bucket=bucket, Key=ft["files"]["pnet"]["key"], Body=b"not pnet")

    c = make_app(tmp_path, "c", **config)
    result = cli(c, "fetch")
    assert result.exit_code == 1
    assert "set human-face_box" in result.output and "is corrupt" in result.output
    assert "model tiny-2" in result.output and "model mtcnn-ft" in result.output
    db = connect(c.config["DATABASE"])
    run = db.execute("SELECT id, command, status FROM runs").fetchall()
    assert [r[1:] for r in run] == [("fetch", "failed")]
    refused = {r[0] for r in db.execute("SELECT source FROM run_errors WHERE run_id = ?", [run[0][0]])}
    assert refused == {key, tiny["key"], ft["key"]}
    assert [r["name"] for r in db.query("SELECT name FROM models WHERE source = 'fetched'")] == ["tiny"]
    names = {r["name"] for r in db.query("SELECT name FROM annotation_sets")}
    # The landmarks set links into boxes that come from a model that was refused: still importable.
    assert names == {"model-face_box-1", "model-face_landmarks5-1"}
    db.close()
    good = next(e for e in manifest["models"].values() if e["name"] == "tiny")
    assert _files_under(tmp_path / "c" / "models") == [good["key"].split("/")[-1]]
    assert _files_under(tmp_path / "c" / "cache") == []


def test_truncated_set_leaves_nothing(tmp_path, moto_url, s3, bucket):
    config = {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": moto_url}
    a = make_app(tmp_path, "a", **config)
    seed(a, tmp_path)
    assert cli(a, "push", "--annotations").exit_code == 0
    manifest = json.loads(s3.get_object(Bucket=bucket, Key="oiap/manifest.json")["Body"].read())
    key = manifest["sets"]["model-face_box-1"]["key"]
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=body[: len(body) // 2])
    s3.delete_object(Bucket=bucket, Key=manifest["sets"]["human-face_box"]["key"])
    c = make_app(tmp_path, "c", **config)
    result = cli(c, "fetch", "--annotations")
    assert result.exit_code == 1 and "model-face_box-1" in result.output and "corrupt" in result.output
    assert "human-face_box" in result.output and "not in the bucket" in result.output
    db = connect(c.config["DATABASE"])
    assert (
        db.execute("SELECT count(*) FROM annotation_sets WHERE name = 'model-face_box-1'").fetchone()[0] == 0
    )
    # The landmarks set still came, its links to the missing boxes dropped rather than pointing anywhere.
    assert db.execute("SELECT count(*) FROM annotations WHERE parent_id IS NOT NULL").fetchone()[0] == 0
    db.close()


def test_missing_bucket_setting_names_it(tmp_path, aws_env):
    app = make_app(tmp_path, "a")
    result = cli(app, "push")
    assert result.exit_code == 1 and "OIAP_S3_BUCKET" in result.output


def test_bucket_that_does_not_exist(tmp_path, moto_url, aws_env):
    app = make_app(tmp_path, "a", S3_BUCKET="no-such-bucket-here", S3_ENDPOINT_URL=moto_url)
    for command in ("push", "fetch"):
        result = cli(app, command)
        assert result.exit_code == 1
        assert "'no-such-bucket-here'" in result.output and "does not exist" in result.output
        assert "OIAP_S3_BUCKET" in result.output


def test_no_credentials(tmp_path, moto_url, bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    app = make_app(tmp_path, "a", S3_BUCKET=bucket, S3_ENDPOINT_URL=moto_url)
    result = cli(app, "push")
    assert result.exit_code == 1
    assert "AWS_ACCESS_KEY_ID" in result.output and "AWS_PROFILE" in result.output


def test_unreachable_endpoint(tmp_path, aws_env):
    app = make_app(tmp_path, "a", S3_BUCKET="b", S3_ENDPOINT_URL=f"http://127.0.0.1:{_free_port()}")
    result = cli(app, "fetch")
    assert result.exit_code == 1 and "OIAP_S3_ENDPOINT_URL" in result.output


@pytest.fixture
def moto_auth(moto_url, s3):
    """Turn on moto's credential checks (IAM) for one test; an IAM user with a key may use S3."""
    iam = boto3.client("iam", endpoint_url=moto_url, region_name="us-east-1")

    def reset(count: str) -> None:
        req = urllib.request.Request(
            moto_url + "/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(req).read()

    # The next three requests go unchecked: they make the user, its policy and its key.
    reset("3")
    name = f"u{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="s3",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    try:
        yield key
    finally:
        reset("inf")


def test_wrong_credentials_with_auth_on(tmp_path, moto_url, bucket, moto_auth, monkeypatch):
    app = make_app(tmp_path, "a", S3_BUCKET=bucket, S3_ENDPOINT_URL=moto_url)
    seed(app, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_auth["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_auth["SecretAccessKey"])
    assert cli(app, "push", "--annotations").exit_code == 0

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong" + moto_auth["SecretAccessKey"][5:])
    result = cli(make_app(tmp_path, "b", S3_BUCKET=bucket, S3_ENDPOINT_URL=moto_url), "fetch")
    assert result.exit_code == 1
    assert "SignatureDoesNotMatch" in result.output and "AWS_SECRET_ACCESS_KEY" in result.output

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    result = cli(make_app(tmp_path, "c", S3_BUCKET=bucket, S3_ENDPOINT_URL=moto_url), "push")
    assert result.exit_code == 1
    assert "InvalidAccessKeyId" in result.output and "AWS_ACCESS_KEY_ID" in result.output


# --- download-images ----------------------------------------------------------------------------


class CuttingProxy:
    """A TCP proxy to the S3 server that cuts every connection after `budget` response bytes.

    A real interrupted transfer: the client sees its connection drop mid-body.
    """

    def __init__(self, upstream_port: int, budget: int | None):
        self.upstream_port, self.budget = upstream_port, budget
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.cuts = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.budget), daemon=True).start()

    def _pipe(self, src, dst, budget):
        sent = 0
        try:
            while data := src.recv(8192):
                if budget is not None and sent + len(data) > budget:
                    dst.sendall(data[: budget - sent])
                    self.cuts += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def open_images(s3, bucket):
    """A bucket standing in for CVDF's: train/<id>.jpg and validation/<id>.jpg, real JPEGs."""
    photos = sorted(DEMO_DATA.glob("*.jpg"))
    data = {image_id: photos[i].read_bytes() for i, image_id in enumerate(IDS)}
    for i, image_id in enumerate(IDS):
        split = "validation" if i == 3 else "train"
        # Public like CVDF's: anonymous (unsigned) requests may read it.
        s3.put_object(Bucket=bucket, Key=f"{split}/{image_id}.jpg", Body=data[image_id], ACL="public-read")
    return bucket, data


def _store_images(app, extra_train=()):
    db = connect(app.config["DATABASE"])
    for i, image_id in enumerate([*IDS, *extra_train]):
        db["images"].insert({"id": image_id, "split": "validation" if i == 3 else "train", "created_at": "x"})
    # A photo imported from a folder has no Open Images file: never downloaded.
    db["images"].insert(
        {"id": "ffffffffffffffff", "split": "train", "path": "/elsewhere/a.jpg", "created_at": "x"}
    )
    db.close()


def test_download_resumes_and_skips(tmp_path, moto_url, open_images):
    bucket, data = open_images
    oi = tmp_path / "oi"
    app = make_app(
        tmp_path, "a", OPEN_IMAGES_DIR=str(oi), OPEN_IMAGES_BUCKET=bucket, OPEN_IMAGES_ENDPOINT_URL=moto_url
    )
    _store_images(app, extra_train=["0fffffffffffffff"])  # in the store, not in the bucket
    train = oi / "train"
    train.mkdir(parents=True)
    # What an interrupted run leaves: the first part of one file; and a truncated final file.
    (train / f"{IDS[0]}.jpg.part").write_bytes(data[IDS[0]][:30000])
    (train / f"{IDS[1]}.jpg").write_bytes(data[IDS[1]][:1000])
    # A .part whose bytes are not the object's: the MD5 check throws it away and starts over.
    (train / f"{IDS[2]}.jpg.part").write_bytes(b"\0" * 5000)

    dry = cli(app, "download-images", "--split", "train", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"would download train/{IDS[0]}.jpg" in dry.output and "ffffffffffffffff" not in dry.output

    result = cli(app, "download-images", "--split", "train", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["downloaded"], report["present"], report["missing"], report["resumed"]) == (3, 0, 1, 1)
    sizes = [len(data[i]) for i in IDS]
    assert report["bytes"] == sizes[0] - 30000 + sizes[1] + (sizes[2] - 5000) + sizes[2]
    for image_id in IDS[:3]:
        assert (train / f"{image_id}.jpg").read_bytes() == data[image_id]
    assert list(train.glob("*.part")) == []

    again = cli(app, "download-images", "--split", "train", "--prefix", "0000", "--json")
    report = json.loads(again.stdout)
    assert (report["total"], report["downloaded"], report["present"], report["bytes"]) == (3, 0, 3, 0)


def test_download_layouts(tmp_path, moto_url, open_images):
    bucket, data = open_images
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("".join(f"train/{i}\n" for i in IDS[:3]))
    oi = tmp_path / "oi"
    # Unpacked from CVDF's train_0.tar.gz: the app reads it there, so it is not fetched again.
    (oi / "train_0").mkdir(parents=True)
    (oi / "train_0" / f"{IDS[0]}.jpg").write_bytes(data[IDS[0]])
    mapped = tmp_path / "disk2"
    app = make_app(
        tmp_path,
        "a",
        OPEN_IMAGES_DIR=str(oi),
        OPEN_IMAGES_DIR_MAP={"0": str(mapped)},
        OPEN_IMAGES_BUCKET=bucket,
        OPEN_IMAGES_ENDPOINT_URL=moto_url,
    )
    result = cli(
        app, "download-images", "--split", "train", "--ids-file", str(ids_file), "--limit", "2", "--json"
    )
    report = json.loads(result.stdout)
    assert (report["total"], report["downloaded"], report["present"]) == (2, 1, 1), result.output
    assert (mapped / f"{IDS[1]}.jpg").read_bytes() == data[IDS[1]]
    assert not (mapped / f"{IDS[0]}.jpg").exists() and not (mapped / f"{IDS[2]}.jpg").exists()


def test_download_survives_dropped_connections(tmp_path, moto_url, open_images):
    bucket, data = open_images
    size = len(data[IDS[3]])
    # Each connection carries a third of the image (plus headers) before the proxy cuts it.
    proxy = CuttingProxy(int(moto_url.rsplit(":", 1)[1]), budget=size // 3)
    try:
        ids_file = tmp_path / "ids.txt"
        ids_file.write_text(f"# one image\nvalidation/{IDS[3]}\ntrain/{IDS[0]}\n")
        oi = tmp_path / "oi"
        app = make_app(
            tmp_path,
            "a",
            OPEN_IMAGES_DIR=str(oi),
            OPEN_IMAGES_BUCKET=bucket,
            OPEN_IMAGES_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}",
        )
        from app.images.download import download_images, read_ids_file

        ids = read_ids_file(ids_file, "validation")
        assert ids == [IDS[3]]
        with app.app_context():
            report = download_images(app.config, "validation", ids, backoff=0.01, retries=8)
        assert report["downloaded"] == 1 and report["resumed"] == 1, report
        assert proxy.cuts >= 3
        assert (oi / "validation" / f"{IDS[3]}.jpg").read_bytes() == data[IDS[3]]
    finally:
        proxy.close()


def test_download_wrong_endpoint_or_bucket(tmp_path, moto_url, open_images):
    oi = str(tmp_path / "oi")
    app = make_app(
        tmp_path, "a", OPEN_IMAGES_DIR=oi, OPEN_IMAGES_ENDPOINT_URL=f"http://127.0.0.1:{_free_port()}"
    )
    _store_images(app)
    started = time.monotonic()
    result = cli(app, "download-images", "--split", "train")
    assert result.exit_code == 1 and "OIAP_OPEN_IMAGES_ENDPOINT_URL" in result.output
    assert time.monotonic() - started < 20  # not a retry storm over every image
    other = make_app(
        tmp_path,
        "b",
        OPEN_IMAGES_DIR=oi,
        OPEN_IMAGES_ENDPOINT_URL=moto_url,
        OPEN_IMAGES_BUCKET="nope-not-here",
    )
    _store_images(other)
    result = cli(other, "download-images", "--split", "train")
    assert result.exit_code == 1 and "'nope-not-here' does not exist" in result.output
    assert "OIAP_OPEN_IMAGES_BUCKET" in result.output


def test_download_bad_input(tmp_path, aws_env):
    app = make_app(tmp_path, "a")
    result = cli(app, "download-images", "--split", "train", "--prefix", "xyz")
    assert result.exit_code == 1 and "--prefix" in result.output
    bad = tmp_path / "ids.txt"
    bad.write_text("not-an-id\n")
    result = cli(app, "download-images", "--split", "train", "--ids-file", str(bad))
    assert result.exit_code == 1 and "line 1" in result.output
    _store_images(app)
    result = cli(app, "download-images", "--split", "train")
    assert result.exit_code == 1 and "OIAP_OPEN_IMAGES_DIR" in result.output


def test_download_from_a_private_bucket_says_access_denied_and_signs_with_credentials(
    tmp_path, moto_url, bucket, moto_auth, monkeypatch
):
    # moto checks credentials now: only the IAM user's key may read; an anonymous request is denied.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_auth["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_auth["SecretAccessKey"])
    # A new session: boto3's default one keeps the credentials it read first.
    owner = boto3.session.Session().client("s3", endpoint_url=moto_url, region_name="us-east-1")
    photos = sorted(DEMO_DATA.glob("*.jpg"))
    for i, image_id in enumerate(IDS[:3]):
        owner.put_object(Bucket=bucket, Key=f"train/{image_id}.jpg", Body=photos[i].read_bytes())
    oi = tmp_path / "oi"
    config = {"OPEN_IMAGES_DIR": str(oi), "OPEN_IMAGES_BUCKET": bucket, "OPEN_IMAGES_ENDPOINT_URL": moto_url}
    app = make_app(tmp_path, "a", **config)
    db = connect(app.config["DATABASE"])
    for image_id in IDS[:3]:
        db["images"].insert({"id": image_id, "split": "train", "created_at": "x"})
    db.close()

    # Anonymous (the default): access denied, said as such, non-zero exit, nothing written.
    result = cli(app, "download-images", "--split", "train")
    assert result.exit_code == 1, result.output
    assert "access denied" in result.output and "not in bucket" not in result.output
    assert "--signed" in result.output and f"s3://{bucket}/train/{IDS[0]}.jpg" in result.output
    assert not (oi / "train").exists() or not list((oi / "train").iterdir())

    # Signed with the credentials push/fetch use: every image comes.
    result = cli(app, "download-images", "--split", "train", "--signed", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["downloaded"], report["missing"], report["failed"]) == (3, 0, 0)
    for i, image_id in enumerate(IDS[:3]):
        assert (oi / "train" / f"{image_id}.jpg").read_bytes() == photos[i].read_bytes()

    # Signed with a wrong secret: denied, and the message points at the credentials.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong" + moto_auth["SecretAccessKey"][5:])
    (oi / "train" / f"{IDS[0]}.jpg").unlink()
    result = cli(app, "download-images", "--split", "train", "--signed")
    assert result.exit_code == 1 and "access denied" in result.output
    assert "AWS_SECRET_ACCESS_KEY" in result.output
