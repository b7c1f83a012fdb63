"""bulk-annotate --engine ray through --address on a cluster of two Ray nodes (a head and a second
node started with `ray start`, both on 127.0.0.1): work lands on both; ray:// is refused."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from app.bulk.local import bulk_annotate
from app.errors import InvalidInput
from app.imports.demo import build_demo
from app.imports.folder import import_dir
from app.paths import REPO_ROOT

pytestmark = pytest.mark.slow

RAY = str(Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin" / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_with(text: str) -> set[int]:
    """Processes whose command line names `text` (this cluster's own temporary folder)."""
    pids = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmd:
            pids.add(int(d.name))
    return pids


def _ray_start(args: list[str], env: dict) -> None:
    out = subprocess.run([RAY, "start", *args], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture
def two_nodes(monkeypatch):
    """A head and a second node, 2 CPUs each, on 127.0.0.1; every process of theirs ended after.

    Not `ray stop`: it ends every Ray process of the machine. Each process of this cluster names its
    own temporary folder on its command line, so teardown ends exactly those, by id."""
    temp = tempfile.mkdtemp(prefix="oiapray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    port = _free_port()
    # RAY_AUTH_MODE set: a head on a machine with ~/.ray/auth_token turns token auth on by itself,
    # and then refuses nodes and drivers started without it.
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", PYTHONPATH=str(REPO_ROOT))
    # Ray puts a 127.0.0.1 node on the machine's own address; both nodes and the driver agree on it.
    common = ["--num-cpus", "2", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # this process joins the cluster as its driver
    try:
        _ray_start(
            ["--head", "--port", str(port), "--temp-dir", temp, "--include-dashboard", "false", *common], env
        )
        _ray_start(["--address", f"127.0.0.1:{port}", *common], env)
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _pids_with(temp):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 20
            while _pids_with(temp) and time.monotonic() < deadline:
                time.sleep(0.2)
        left = _pids_with(temp)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"the cluster left processes behind: {sorted(left)}"


def _run(args: list[str], env: dict) -> str:
    out = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def _last_json(text: str):
    """The JSON value that ends the output (Ray may print lines before it)."""
    start = text.rindex("\n{\n") + 1 if "\n{\n" in text else text.index("{")
    return json.loads(text[start:])


def _alive_nodes(address: str, env: dict) -> set[str]:
    # In a process of its own, as the bulk run below: Ray driver state left in the test process by
    # earlier tests (local clusters started and shut down) must not decide what this test sees.
    code = (
        f"import json, ray; ray.init(address={address!r}, log_to_driver=False, configure_logging=False);"
        "print(json.dumps(sorted(n['NodeID'] for n in ray.nodes() if n['Alive'])))"
    )
    return set(json.loads(_run([sys.executable, "-c", code], env).strip().splitlines()[-1]))


def _forty_photos(folder: Path) -> Path:
    """The ten demo photos four ways each (as they are, mirrored, upside down, cropped): 40 distinct
    files. Ten photos are a second's work for the first actor up, which may then take them all
    before the other node's actor has loaded its models; forty keep both busy."""
    from PIL import Image, ImageOps

    folder.mkdir()
    demo = REPO_ROOT / "app" / "demo_data"
    for src in sorted([*demo.glob("*.jpg"), *demo.glob("*.png")]):
        with Image.open(src) as im:
            im = im.convert("RGB")
            w, h = im.size
            variants = {
                "a": im,
                "b": ImageOps.mirror(im),
                "c": im.rotate(180),
                "d": im.crop((w // 20, h // 20, w - w // 20, h - h // 20)),
            }
            for tag, v in variants.items():
                v.save(folder / f"{src.stem}-{tag}.jpg", quality=92)
    return folder


def test_bulk_annotate_through_address_uses_both_nodes(app, db, two_nodes, tmp_path):
    summary = import_dir(db, _forty_photos(tmp_path / "photos"), "train")
    assert summary["added"] == 40  # all unlabelled: the run takes every one
    env = dict(
        os.environ,
        OIAP_INSTANCE=app.instance_path,
        OIAP_DATABASE=app.config["DATABASE"],
        OIAP_SECRET_KEY="test",
        FLASK_APP="app",
        RAY_AUTH_MODE="disabled",
        PYTHONPATH=str(REPO_ROOT),
    )
    nodes = _alive_nodes(two_nodes, env)
    assert len(nodes) == 2
    # The run in a process of its own, as a user runs it: `flask oiap bulk-annotate --address`.
    # 1.5 CPUs an actor on nodes of 2: one actor a node, with room left for Ray Data's own tasks.
    s = _last_json(
        _run(
            [sys.executable, "-m", "flask", "oiap", "bulk-annotate", "--kind", "face_box", "--batch", "1"]
            + ["--workers", "2", "--engine", "ray", "--address", two_nodes, "--actor-cpus", "1.5", "--json"],
            env,
        )
    )
    assert s["status"] == "done" and s["images"] == 40
    done = s["profile_s"]["nodes"]
    assert set(done) == nodes and all(n >= 1 for n in done.values()) and sum(done.values()) == 40
    assert s["sets"]["box"]["annotations"] >= 120  # upside-down photos lose a few faces


def test_ray_client_addresses_are_refused(app, db):
    build_demo(db, boxes_source="model")
    with pytest.raises(InvalidInput, match="ray:// .*not supported.*--address auto"):
        bulk_annotate(
            db, app.config, "face_box", engine="ray", engine_options={"address": "ray://head:10001"}
        )
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0  # refused before the run starts
