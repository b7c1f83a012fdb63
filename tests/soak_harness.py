"""The soak harness: gunicorn serving a real instance, simulated reviewers, and the checks afterwards.

Used by scripts/soak.py (20 reviewers, minutes) and tests/test_soak.py (5 reviewers, seconds).
Reviewers are threads with their own requests.Session: they log in through the form (CSRF), rate
good/bad, undo, skip and edit (the editor's JSON save, sometimes with a stale version on purpose),
and record every action the server acknowledged (2xx) and which item they were shown, and when.
The server may be killed with SIGKILL (its whole process group) and restarted mid-run; clients
retry. Afterwards `verify` reads the store and checks that nothing acknowledged was lost.

Everything is bounded: reviewers stop at the deadline, requests time out, the server listens on
127.0.0.1 only.
"""

import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "soak password 123"
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
ITEM = re.compile(r'id="review-item"[^>]*?data-annotation-id="(\d+)"')
CURSOR = re.compile(r'name="cursor" value="([^"]*)"')
IMAGE = re.compile(r'aria-label="image ([0-9a-f]+) with')
UNDID = re.compile(
    r"Undid your rating &#39;(good|bad)&#39; of annotation (\d+)\.|Undid your rating '(good|bad)' of annotation (\d+)\."
)
MESSAGE = 'class="flash review-message"'
HOLDER = "Claimed by "
HX = {"HX-Request": "true", "HX-Target": "review-item"}
TIMEOUT = 30
EDITABLE = ("face_box", "face_landmarks5", "face_landmarks68")


def log(msg: str) -> None:
    """Progress to stderr."""
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the instance ---------------------------------------------------------------------------------


def _env(instance: Path) -> dict:
    return dict(
        os.environ,
        FLASK_APP="app",
        OIAP_INSTANCE=str(instance),
        # Every simulated reviewer logs in from 127.0.0.1: the login limiter would refuse most of them.
        OIAP_RATELIMIT_ENABLED="false",
    )


def build_instance(instance: Path, n_reviewers: int, copies: int = 3, models: bool = False) -> dict:
    """A store with the demo data (with `models`: through `flask oiap demo`, builtin models included),
    `copies` extra 68-point sets imported with import-csv from an export of the demo, an admin and
    reviewers soak00..; returns {"sets": {id: kind}, "users": {name: id}, "annotations": n}."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from app.auth.users import create_user
    from app.db import connect, immediate, migrate
    from app.export.files import select_rows
    from app.export.writers import csv_chunks
    from app.imports.csv import import_csv
    from app.imports.demo import build_demo

    instance.mkdir(parents=True, exist_ok=True)
    if models:
        for args in (["init-db"], ["demo"]):
            subprocess.run(
                [sys.executable, "-m", "flask", "oiap", *args],
                cwd=REPO,
                env=_env(instance),
                check=True,
                stdout=subprocess.DEVNULL,
            )
    db = connect(str(instance / "oiap.sqlite3"))
    try:
        if not models:
            migrate(db)
            build_demo(db)
        csv_path = instance / "demo-landmarks68.csv"
        rows = select_rows(db, "face_landmarks68", ("train", "validation"), sets=["demo-landmarks68"])
        csv_path.write_text("".join(csv_chunks(rows, "face_landmarks68")), encoding="utf-8")
        for k in range(copies):
            import_csv(db, str(csv_path), "face_landmarks68", f"soak-copy-{k}", source="model")
        with immediate(db):
            create_user(db, "soakadmin", PASSWORD, "admin")
            for i in range(n_reviewers):
                create_user(db, f"soak{i:02d}", PASSWORD, "reviewer")
        sets = {
            r[0]: r[1] for r in db.execute("SELECT id, kind FROM annotation_sets WHERE source != 'human'")
        }
        users = {r[1]: r[0] for r in db.execute("SELECT id, username FROM users")}
        n = db.execute("SELECT count(*) FROM annotations").fetchone()[0]
    finally:
        db.close()
    return {"sets": sets, "users": users, "annotations": n}


# ---- the server -----------------------------------------------------------------------------------


class Server:
    """gunicorn (-w 1 --threads N) serving the instance on 127.0.0.1; kill9() crashes it, start() restarts."""

    def __init__(self, instance: Path, port: int | None = None, threads: int = 8):
        self.instance, self.port, self.threads = instance, port or free_port(), threads
        self.proc: subprocess.Popen | None = None
        self.log_path = instance / "gunicorn.log"
        self.starts = 0
        self.kills = 0

    @property
    def url(self) -> str:
        """The base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        """Start gunicorn and wait until it answers."""
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "1",
            "--threads",
            str(self.threads),
            "-b",
            f"127.0.0.1:{self.port}",
            "--graceful-timeout",
            "5",
            # gunicorn 27's control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl): servers
            # started side by side (tests, bench, make run) would share it.
            "--no-control-socket",
            "app:create_app()",
        ]
        with open(self.log_path, "a") as out:
            # Its own process group, so kill9() takes the master and the worker at once, as a crash would.
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=_env(self.instance), stdout=out, stderr=out, start_new_session=True
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if requests.get(f"{self.url}/login", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {timeout} s; see {self.log_path}")

    def kill9(self) -> None:
        """SIGKILL the server's whole process group (master and worker), no cleanup."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM), else kill it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


# ---- the reviewers --------------------------------------------------------------------------------


@dataclass
class Record:
    """What the clients saw: acknowledged actions, items shown, status codes."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter = field(default_factory=Counter)
    server_errors: list = field(default_factory=list)
    ratings: list = field(default_factory=list)  # (user, annotation_id, value)
    refused_ratings: int = 0
    undos: list = field(default_factory=list)  # (user, annotation_id, undone value)
    edits: list = field(default_factory=list)  # (user, annotation_id, version, box, points, action)
    conflicts: int = 0
    stale_sent: int = 0
    stale_accepted: list = field(default_factory=list)
    connection_errors: int = 0
    # (annotation_id, user, from, to): the item was on the user's screen, claimed, between those times.
    held: list = field(default_factory=list)
    client_errors: list = field(default_factory=list)

    def status(self, method: str, url: str, code: int, body: str) -> None:
        """Count one response; keep 5xx for the report."""
        with self.lock:
            self.statuses[code] += 1
            if code >= 500:
                self.server_errors.append((method, url, code, body[:300]))

    @property
    def requests(self) -> int:
        """Responses received."""
        return sum(self.statuses.values())


class Reviewer:
    """One simulated reviewer: a requests.Session and the item on screen."""

    def __init__(self, name: str, url: str, sets: dict, record: Record, deadline: float, seed: int):
        self.name, self.url, self.sets, self.rec, self.deadline = name, url, sets, record, deadline
        self.rng = random.Random(seed)
        self.s = requests.Session()
        self.set_id, self.kind, self.status = None, None, "unrated"
        self.item = self.cursor = self.image = None
        self.shown_at: float | None = None

    # -- HTTP with retries across a server restart

    def _call(self, method: str, path: str, **kw) -> requests.Response | None:
        try:
            r = self.s.request(method, self.url + path, timeout=TIMEOUT, **kw)
        except requests.RequestException:
            with self.rec.lock:
                self.rec.connection_errors += 1
            return None
        self.rec.status(method, path, r.status_code, r.text)
        return r

    def _wait(self, seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, self.deadline - time.monotonic())))

    def login(self) -> bool:
        """Log in through the form, retrying while the server is down."""
        while time.monotonic() < self.deadline:
            page = self._call("GET", "/login")
            if page is not None and page.status_code == 200:
                m = TOKEN.search(page.text)
                r = self._call(
                    "POST",
                    "/login",
                    data={"username": self.name, "password": PASSWORD, "csrf_token": m.group(1) if m else ""},
                    allow_redirects=False,
                )
                if r is not None and r.status_code == 302:
                    home = self._call("GET", "/")
                    if home is not None and home.status_code == 200 and TOKEN.search(home.text):
                        self.s.headers["X-CSRFToken"] = TOKEN.search(home.text).group(1)
                        return True
            self._wait(0.2)
        return False

    # -- what is on screen

    def _release(self, at: float) -> None:
        # The item on screen stops being held (for the overlap check) when the next request is sent.
        if self.item is not None and self.shown_at is not None:
            with self.rec.lock:
                self.rec.held.append((self.item, self.name, self.shown_at, at))
        self.shown_at = None

    def _show(self, r: requests.Response | None) -> None:
        # A response with the item fragment: remember it; it is held unless someone else's claim is named.
        self.item = self.cursor = self.image = None
        if r is None or r.status_code != 200:
            return
        m = ITEM.search(r.text)
        if not m:
            return
        self.item = int(m.group(1))
        c, i = CURSOR.search(r.text), IMAGE.search(r.text)
        self.cursor = c.group(1) if c else None
        self.image = i.group(1) if i else None
        if HOLDER not in r.text:
            self.shown_at = time.monotonic()

    def open_set(self) -> None:
        """Open a random set's queue (unrated, or all so there is always something)."""
        self.set_id, self.kind = self.rng.choice(list(self.sets.items()))
        self.status = self.rng.choice(("unrated", "unrated", "all"))
        self._release(time.monotonic())
        self._show(self._call("GET", f"/review/{self.set_id}", params={"status": self.status}, headers=HX))

    def _form(self, **extra) -> dict:
        data = {"status": self.status} if self.status != "unrated" else {}
        return {**data, **extra}

    def rate(self) -> None:
        """Rate the item on screen good or bad; the answer shows the next one."""
        value = self.rng.choice(("good", "bad"))
        ann, cursor = self.item, self.cursor
        t = time.monotonic()
        r = self._call(
            "POST",
            f"/review/{self.set_id}/rate",
            data=self._form(annotation_id=ann, cursor=cursor or "", value=value),
            headers=HX,
        )
        self._release(t)
        if r is not None and r.status_code == 200 and MESSAGE not in r.text:
            with self.rec.lock:
                self.rec.ratings.append((self.name, ann, value))
        elif r is not None and r.status_code == 200:
            with self.rec.lock:
                self.rec.refused_ratings += 1
        self._show(r)

    def skip(self) -> None:
        """Skip to the next item."""
        t = time.monotonic()
        params = self._form(cursor=self.cursor) if self.cursor else self._form()
        r = self._call("GET", f"/review/{self.set_id}", params=params, headers=HX)
        self._release(t)
        self._show(r)

    def undo(self) -> None:
        """Undo my last rating in this set; the answer shows that item again."""
        t = time.monotonic()
        data = self._form(annotation_id=self.item) if self.item else self._form()
        r = self._call("POST", f"/review/{self.set_id}/undo", data=data, headers=HX)
        self._release(t)
        if r is not None and r.status_code == 200:
            m = UNDID.search(r.text)
            if m:
                value, ann = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                with self.rec.lock:
                    self.rec.undos.append((self.name, int(ann), value))
        self._show(r)

    def edit(self) -> None:
        """Correct one face of the item's image in the editor (JSON save); sometimes with a stale version."""
        if not self.image or self.kind not in EDITABLE:
            return
        r = self._call("GET", f"/edit/image/{self.image}/faces", params={"kind": self.kind})
        if r is None or r.status_code != 200:
            return
        faces = [f for f in r.json()["faces"] if f.get("box")]
        if not faces:
            return
        f = self.rng.choice(faces)
        n = {"face_box": 0, "face_landmarks5": 5, "face_landmarks68": 68}[self.kind]
        if n and (not f.get("points") or len(f["points"]) != n):
            return
        d = self.rng.uniform(-0.004, 0.004)
        x0, y0, x1, y1 = f["box"]
        box = [min(max(v + d, 0.0), 1.0) for v in (x0, y0, x1, y1)]
        if not (box[0] < box[2] and box[1] < box[3]):
            return
        face = {"key": f["key"], "box": box}
        if n:
            face["points"] = [
                [min(max(p[0] + d, 0.0), 1.0), min(max(p[1] + d, 0.0), 1.0), int(p[2]) if len(p) > 2 else 1]
                for p in f["points"]
            ]
        stale = False
        if f.get("id") is not None:
            face.update(id=f["id"], origin_id=f.get("origin_id"), version=f["version"])
            if f["version"] > 1 and self.rng.random() < 0.3:
                face["version"] = f["version"] - 1
                stale = True
        else:
            face["origin_id"] = f["origin_id"]
        body = {"image_id": self.image, "kind": self.kind, "faces": [face]}
        r = self._call("POST", "/edit/save", json=body)
        if r is None:
            return
        with self.rec.lock:
            self.rec.stale_sent += stale
            if r.status_code == 409:
                self.rec.conflicts += 1
            elif r.status_code == 200 and stale:
                self.rec.stale_accepted.append((self.name, face))
            elif r.status_code == 200:
                for out in r.json()["faces"]:
                    action = "edit_save" if face.get("id") else "edit_correct"
                    self.rec.edits.append(
                        (self.name, out["id"], out["version"], box, face.get("points"), action)
                    )
            elif r.status_code < 500:
                self.rec.client_errors.append(("save", r.status_code, r.text[:200]))

    def run(self) -> None:
        """Act until the deadline, with a short think time between actions."""
        try:
            if not self.login():
                return
            self.open_set()
            while time.monotonic() < self.deadline:
                self._wait(self.rng.uniform(0.01, 0.08))
                if self.item is None:
                    if not self.s.headers.get("X-CSRFToken") or self._call("GET", "/login") is None:
                        self._wait(0.2)
                    self.open_set()
                    continue
                roll = self.rng.random()
                if roll < 0.6:
                    self.rate()
                elif roll < 0.72:
                    self.skip()
                elif roll < 0.82:
                    self.undo()
                elif roll < 0.95:
                    self.edit()
                else:
                    self.open_set()
            self._release(time.monotonic())
        except Exception as e:  # a client bug must show in the report, not kill the thread silently
            with self.rec.lock:
                self.rec.client_errors.append((self.name, repr(e)))


def run_reviewers(
    server: Server,
    sets: dict,
    n_reviewers: int,
    seconds: float,
    kill_at: float | None = None,
    seed: int = 1,
) -> Record:
    """Run the reviewers for `seconds`; with kill_at, SIGKILL the server then and restart it."""
    rec = Record()
    deadline = time.monotonic() + seconds
    reviewers = [
        Reviewer(f"soak{i:02d}", server.url, sets, rec, deadline, seed * 1000 + i) for i in range(n_reviewers)
    ]
    threads = [threading.Thread(target=r.run, name=r.name, daemon=True) for r in reviewers]
    for t in threads:
        t.start()
    if kill_at is not None:
        time.sleep(max(0.0, min(kill_at, seconds)))
        log(f"soak: kill -9 the server at {kill_at:.0f} s ({rec.requests} requests so far)")
        server.kill9()
        server.start()
        log(f"soak: server restarted ({rec.connection_errors} connection errors while it was down)")
    for t in threads:
        t.join(seconds + TIMEOUT + 30)
    return rec


# ---- the checks -----------------------------------------------------------------------------------


def _overlaps(held: list) -> list:
    """Items on two reviewers' screens (claimed) at the same time."""
    by_item = defaultdict(list)
    for ann, user, start, end in held:
        if end > start:
            by_item[ann].append((start, end, user))
    out = []
    for ann, spans in by_item.items():
        spans.sort()
        for i, (s1, e1, u1) in enumerate(spans):
            for s2, e2, u2 in spans[i + 1 :]:
                if s2 >= e1:
                    break
                if u1 != u2:
                    out.append((ann, u1, u2, round(min(e1, e2) - max(s1, s2), 3)))
    return out


def verify(db_path: Path, rec: Record, users: dict) -> dict:
    """Check the store against what the clients saw; returns the figures and a list of problems."""
    problems = []
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            problems.append(f"integrity_check: {integrity}")
        if rec.server_errors:
            problems.append(f"{len(rec.server_errors)} responses were 5xx, e.g. {rec.server_errors[:3]}")
        if rec.client_errors:
            problems.append(f"unexpected client-side answers: {rec.client_errors[:5]}")
        if rec.stale_accepted:
            problems.append(f"{len(rec.stale_accepted)} stale saves were accepted: {rec.stale_accepted[:2]}")
        overlaps = _overlaps(rec.held)
        if overlaps:
            problems.append(f"{len(overlaps)} items were claimed by two reviewers at once: {overlaps[:5]}")

        lost = []
        stored = Counter(conn.execute("SELECT user_id, annotation_id, value FROM ratings").fetchall())
        events = Counter()
        for user_id, action, target, after in conn.execute(
            "SELECT user_id, action, target_id, after FROM events WHERE action IN ('rate', 'undo_rating')"
        ):
            a = json.loads(after or "{}")
            events[(user_id, action, int(target), a.get("rating"))] += 1
        acked = Counter((users[u], ann, value) for u, ann, value in rec.ratings)
        for (uid, ann, value), n in acked.items():
            if stored[(uid, ann, value)] < n:
                lost.append(("rating not in ratings", uid, ann, value))
            if events[(uid, "rate", ann, value)] < n:
                lost.append(("rating not in events", uid, ann, value))
        cleared = Counter(
            conn.execute(
                "SELECT user_id, annotation_id, previous FROM ratings WHERE value = 'cleared'"
            ).fetchall()
        )
        undo_events = Counter()
        for (uid, action, ann, _), n in events.items():
            if action == "undo_rating":
                undo_events[(uid, ann)] += n
        for (uid, ann, value), n in Counter((users[u], a, v) for u, a, v in rec.undos).items():
            if cleared[(uid, ann, value)] < n:
                lost.append(("undo not in ratings", uid, ann, value))
        for (uid, ann), n in Counter((users[u], a) for u, a, _ in rec.undos).items():
            if undo_events[(uid, ann)] < n:
                lost.append(("undo not in events", uid, ann))

        edit_events = set()
        for user_id, action, target, after in conn.execute(
            "SELECT user_id, action, target_id, after FROM events WHERE action IN ('edit_save', 'edit_correct')"
        ):
            edit_events.add((user_id, action, int(target), json.loads(after or "{}").get("version")))
        newest = {}
        for user, ann, version, box, points, action in rec.edits:
            if (users[user], action, ann, version) not in edit_events:
                lost.append(("edit not in events", user, ann, version))
            if version >= newest.get(ann, (0,))[0]:
                newest[ann] = (version, box, points)
        for ann, (version, box, points) in newest.items():
            row = conn.execute(
                "SELECT version, x0, y0, x1, y1, points FROM annotations WHERE id = ?", [ann]
            ).fetchone()
            if row is None or row[0] < version:
                lost.append(("edit not in annotations", ann, version))
            elif row[0] == version:
                same_box = all(abs(a - b) < 1e-9 for a, b in zip(row[1:5], box, strict=True))
                want = json.loads(row[5]) if row[5] else None
                same_points = (want is None and points is None) or (
                    want is not None
                    and points is not None
                    and all(
                        abs(p[0] - q[0]) < 2e-6 and abs(p[1] - q[1]) < 2e-6
                        for p, q in zip(want, points, strict=True)
                    )
                )
                if not (same_box and same_points):
                    lost.append(("edit geometry differs", ann, version))
        if lost:
            problems.append(f"{len(lost)} acknowledged actions are missing: {lost[:5]}")

        counters = conn.execute(
            "SELECT s.id, s.n_total, s.n_good, s.n_bad,"
            " (SELECT count(*) FROM annotations a WHERE a.set_id = s.id AND a.deleted = 0),"
            " (SELECT count(*) FROM annotations a WHERE a.set_id = s.id AND a.deleted = 0 AND a.rating = 'good'),"
            " (SELECT count(*) FROM annotations a WHERE a.set_id = s.id AND a.deleted = 0 AND a.rating = 'bad')"
            " FROM annotation_sets s"
        ).fetchall()
        wrong = [r for r in counters if r[1:4] != r[4:7]]
        if wrong:
            problems.append(f"counters differ from the table (id, counters, counted): {wrong[:5]}")
        multi = conn.execute(
            "SELECT user_id, count(*) FROM claims GROUP BY user_id HAVING count(*) > 1"
        ).fetchall()
        if multi:
            problems.append(f"users holding more than one claim: {multi}")
        n_ratings_rows = conn.execute("SELECT count(*) FROM ratings").fetchone()[0]
    finally:
        conn.close()
    return {
        "requests": rec.requests,
        "statuses": dict(sorted(rec.statuses.items())),
        "ratings": len(rec.ratings),
        "refused_ratings": rec.refused_ratings,
        "undos": len(rec.undos),
        "edits": len(rec.edits),
        "conflicts_409": rec.conflicts,
        "stale_saves_sent": rec.stale_sent,
        "connection_errors": rec.connection_errors,
        "items_shown": len(rec.held),
        "ratings_rows": n_ratings_rows,
        "items_lost": len(lost),
        "integrity": integrity,
        "problems": problems,
    }


def soak(
    instance: Path,
    reviewers: int,
    seconds: float,
    kill_at: float | None = None,
    port: int | None = None,
    threads: int = 8,
    models: bool = False,
    copies: int = 3,
    seed: int = 1,
) -> dict:
    """Build the instance, serve it, run the reviewers (and the kill), stop, verify; returns the figures."""
    t0 = time.monotonic()
    built = build_instance(instance, reviewers, copies=copies, models=models)
    log(
        f"soak: instance with {built['annotations']} annotations in {len(built['sets'])} sets ({time.monotonic() - t0:.1f} s)"
    )
    server = Server(instance, port, threads)
    server.start()
    try:
        rec = run_reviewers(server, built["sets"], reviewers, seconds, kill_at, seed)
    finally:
        server.stop()
    result = verify(instance / "oiap.sqlite3", rec, built["users"])
    result.update(
        server_kills=server.kills, server_starts=server.starts, faults_injected=server.kills + rec.stale_sent
    )
    if result["problems"] and server.log_path.exists():
        result["server_log_tail"] = server.log_path.read_text(errors="replace")[-3000:]
    return result
