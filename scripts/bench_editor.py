"""Benchmark: the SVG editor's redraw and save times in Debian's Chromium, on an image with many faces.

Builds a temporary store with the demo photos and the dlib faces, adds N more 68-point faces to one
photo (copies of a real face at random offsets), serves it, opens the editor at 1366x768 and measures
in the page:

- redraw, nothing changed: what a pan or a hover costs;
- redraw after a nudge of one point of one face: what each frame of a drag costs (one face rebuilt);
- redraw after a zoom: every face's point radius changes (CSS variables, no rebuild);
- save of one corrected face: POST /edit/save round trip (validation, write, rating, audit), median
  of seven saves (the first corrects the machine face, the others update the human one by version).

    python scripts/bench_editor.py              # 60 extra faces
    python scripts/bench_editor.py --faces 200
"""

import argparse
import random
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-sync",
]
TIMING = """async (n) => {
  const e = window.oiapEditor;
  const ms = (f) => { const t = performance.now(); for (let i = 0; i < n; i++) f(i); return (performance.now() - t) / n; };
  const out = {};
  out.steady = ms(() => e.draw());
  const key = e.selection.key;
  e.select(key, 30);
  out.nudge = ms((i) => { document.dispatchEvent(new KeyboardEvent("keydown", {key: i % 2 ? "ArrowLeft" : "ArrowRight"})); e.draw(); });
  out.zoom = ms((i) => { e.setView(2 + (i % 2), 200, 200); e.draw(); });
  const saves = [];
  for (let i = 0; i < 7; i++) {
    document.dispatchEvent(new KeyboardEvent("keydown", {key: i % 2 ? "ArrowLeft" : "ArrowRight"}));
    const t = performance.now();
    await e.save();
    saves.push(performance.now() - t);
  }
  saves.sort((a, b) => a - b);
  out.save = saves[3];
  const t = performance.now();
  await fetch(new URL("/static/js/editor.js", location.href), {cache: "no-store"});
  out.get = performance.now() - t;
  out.status = document.getElementById("ed-status").textContent;
  out.faces = e.faces().length;
  return out;
}"""


def main() -> None:
    """Build, serve, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=60, help="extra faces on the photo (default 60)")
    parser.add_argument("--repeat", type=int, default=50, help="redraws per measurement (default 50)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from app import create_app
    from app.annotations.rows import annotation_row, get_annotation, insert_annotations
    from app.auth.users import create_user
    from app.db import connect, migrate
    from tests.editor_seed import seed

    instance = Path(tempfile.mkdtemp()) / "instance"
    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance),
            "DATABASE": str(instance / "oiap.sqlite3"),
            "CACHE_DIR": str(instance / "cache"),
            "IMAGES_DIR": str(instance / "images"),
            "SECRET_KEY": "bench",
            "RATELIMIT_ENABLED": False,
        }
    )
    db = connect(app.config["DATABASE"])
    migrate(db)
    create_user(db, "bench", "bench-password", "reviewer")
    data = seed(db)
    face = data["faces"][0]
    a = get_annotation(db, face["id"])
    rng = random.Random(0)
    rows = []
    for _ in range(args.faces):
        dx, dy = rng.uniform(-0.35, 0.5), rng.uniform(-0.2, 0.6)
        box = (a["x0"] + dx, a["y0"] + dy, a["x1"] + dx, a["y1"] + dy)
        if not all(0 <= v <= 1 for v in box):
            continue
        pts = [[min(1, max(0, p[0] + dx)), min(1, max(0, p[1] + dy)), 1] for p in a["points"]]
        rows.append(
            annotation_row(data["set_id"], face["image"]["id"], "face_landmarks68", box, pts, score=0.5)
        )
    insert_annotations(db, rows)
    db.conn.commit()
    db.close()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"{url}/login")
        page.fill("input[name=username]", "bench")
        page.fill("input[name=password]", "bench-password")
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/")
        page.goto(f"{url}/edit/annotation/{face['id']}")
        page.wait_for_function("window.oiapEditor !== undefined")
        r = page.evaluate(TIMING, args.repeat)
        browser.close()
    server.shutdown()
    print(f"faces on the photo: {r['faces']} (68 points each), {args.repeat} redraws per line")
    print(f"redraw, nothing changed:     {r['steady']:.2f} ms")
    print(f"redraw after a point nudge:  {r['nudge']:.2f} ms")
    print(f"redraw after a zoom:         {r['zoom']:.2f} ms")
    print(f"save of one face (median):   {r['save']:.1f} ms ({r['status']})")
    print(f"a static file, for scale:    {r['get']:.1f} ms")


if __name__ == "__main__":
    main()
