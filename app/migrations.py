"""The schema, as sqlite-utils migrations. Never edit a migration once it is applied."""

import json

from sqlite_utils import Database, Migrations

migrations = Migrations("oiap")


@migrations(transactional=False)
def m000_wal(db: Database) -> None:
    # WAL lets reviewers read while a bulk job writes; it persists in the file.
    db.execute("PRAGMA journal_mode = WAL")


@migrations()
def m001_core(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('admin', 'reviewer')),
            active INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL
        );

        CREATE TABLE images (
            id TEXT PRIMARY KEY CHECK (length(id) = 16),
            split TEXT NOT NULL CHECK (split IN ('train', 'validation', 'test')),
            path TEXT,
            width INTEGER,
            height INTEGER,
            rotation REAL,
            licence TEXT,
            author TEXT,
            author_url TEXT,
            title TEXT,
            url TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX images_split ON images (split, id);

        CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL,
            params TEXT,
            metrics TEXT,
            status TEXT NOT NULL DEFAULT 'candidate'
                CHECK (status IN ('candidate', 'active', 'retired')),
            parent_id INTEGER REFERENCES models (id),
            source TEXT NOT NULL CHECK (source IN ('builtin', 'trained', 'fetched', 'added')),
            licence TEXT,
            origin TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX models_kind_status ON models (kind, status);
        CREATE UNIQUE INDEX models_one_active ON models (kind) WHERE status = 'active';

        CREATE TABLE annotation_sets (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('human', 'model', 'import')),
            label TEXT,
            model_id INTEGER REFERENCES models (id),
            created_by INTEGER REFERENCES users (id),
            status TEXT NOT NULL DEFAULT 'open',
            params TEXT,
            created_at TEXT NOT NULL,
            -- Counters kept by triggers, so the dashboard never counts the table.
            n_total INTEGER NOT NULL DEFAULT 0,
            n_good INTEGER NOT NULL DEFAULT 0,
            n_bad INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX annotation_sets_kind ON annotation_sets (kind, source);

        CREATE TABLE annotations (
            id INTEGER PRIMARY KEY,
            set_id INTEGER NOT NULL REFERENCES annotation_sets (id),
            image_id TEXT NOT NULL REFERENCES images (id),
            kind TEXT NOT NULL,
            label TEXT,
            x0 REAL, y0 REAL, x1 REAL, y1 REAL,
            points TEXT,
            score REAL,
            parent_id INTEGER REFERENCES annotations (id),
            origin_id INTEGER REFERENCES annotations (id),
            flags TEXT,
            created_by INTEGER REFERENCES users (id),
            created_at TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            deleted INTEGER NOT NULL DEFAULT 0,
            rating TEXT CHECK (rating IN ('good', 'bad')),
            rated_by INTEGER REFERENCES users (id),
            rated_at TEXT
        );
        -- The review queue: unrated first, lowest score first, within a set.
        CREATE INDEX annotations_queue ON annotations (set_id, deleted, rating, score, id);
        CREATE INDEX annotations_set_image ON annotations (set_id, image_id);
        -- Merge rules and bulk selection: everything of a kind on an image.
        CREATE INDEX annotations_image_kind ON annotations (image_id, kind);
        CREATE INDEX annotations_kind_rating ON annotations (kind, rating);
        CREATE INDEX annotations_origin ON annotations (origin_id) WHERE origin_id IS NOT NULL;
        CREATE INDEX annotations_parent ON annotations (parent_id) WHERE parent_id IS NOT NULL;

        CREATE TRIGGER annotations_count_insert AFTER INSERT ON annotations
        WHEN NEW.deleted = 0
        BEGIN
            UPDATE annotation_sets SET
                n_total = n_total + 1,
                n_good = n_good + (NEW.rating IS 'good'),
                n_bad = n_bad + (NEW.rating IS 'bad')
            WHERE id = NEW.set_id;
        END;

        CREATE TRIGGER annotations_count_delete AFTER DELETE ON annotations
        WHEN OLD.deleted = 0
        BEGIN
            UPDATE annotation_sets SET
                n_total = n_total - 1,
                n_good = n_good - (OLD.rating IS 'good'),
                n_bad = n_bad - (OLD.rating IS 'bad')
            WHERE id = OLD.set_id;
        END;

        CREATE TRIGGER annotations_count_update AFTER UPDATE OF rating, deleted, set_id
        ON annotations
        BEGIN
            UPDATE annotation_sets SET
                n_total = n_total - (OLD.deleted = 0),
                n_good = n_good - (OLD.deleted = 0 AND OLD.rating IS 'good'),
                n_bad = n_bad - (OLD.deleted = 0 AND OLD.rating IS 'bad')
            WHERE id = OLD.set_id;
            UPDATE annotation_sets SET
                n_total = n_total + (NEW.deleted = 0),
                n_good = n_good + (NEW.deleted = 0 AND NEW.rating IS 'good'),
                n_bad = n_bad + (NEW.deleted = 0 AND NEW.rating IS 'bad')
            WHERE id = NEW.set_id;
        END;

        CREATE TABLE ratings (
            id INTEGER PRIMARY KEY,
            annotation_id INTEGER NOT NULL REFERENCES annotations (id),
            user_id INTEGER REFERENCES users (id),
            -- 'cleared' records an undo: the annotation went back to unrated.
            value TEXT NOT NULL CHECK (value IN ('good', 'bad', 'cleared')),
            previous TEXT,
            at TEXT NOT NULL
        );
        CREATE INDEX ratings_annotation ON ratings (annotation_id, id);
        CREATE INDEX ratings_user ON ratings (user_id, id);

        CREATE TABLE claims (
            annotation_id INTEGER PRIMARY KEY REFERENCES annotations (id),
            user_id INTEGER NOT NULL REFERENCES users (id),
            expires_at REAL NOT NULL
        );
        CREATE INDEX claims_user ON claims (user_id);
        CREATE INDEX claims_expires ON claims (expires_at);

        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            command TEXT NOT NULL,
            params TEXT,
            status TEXT NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
            progress INTEGER NOT NULL DEFAULT 0,
            total INTEGER,
            cursor TEXT,
            error TEXT,
            set_id INTEGER REFERENCES annotation_sets (id),
            model_id INTEGER REFERENCES models (id),
            started_at TEXT NOT NULL,
            finished_at TEXT
        );

        CREATE TABLE run_errors (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs (id),
            image_id TEXT,
            source TEXT,
            line INTEGER,
            reason TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE INDEX run_errors_run ON run_errors (run_id);

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            user_id INTEGER REFERENCES users (id),
            action TEXT NOT NULL,
            target_type TEXT,
            target_id TEXT,
            set_id INTEGER,
            before TEXT,
            after TEXT
        );
        CREATE INDEX events_user ON events (user_id, id);
        CREATE INDEX events_set ON events (set_id, id);
        CREATE INDEX events_at ON events (at);
        """
    )


@migrations()
def m005_review_queue_by_image(db: Database) -> None:
    # The review queue ordered by image walks this index, as the default order walks annotations_queue.
    db.execute(
        "CREATE INDEX IF NOT EXISTS annotations_queue_image"
        " ON annotations (set_id, deleted, rating, image_id, id)"
    )


@migrations()
def m006_scale_set_page_index(db: Database) -> None:
    # A set page skips (page - 1) * 60 rows in (image_id, id) order: over this covering index the skip
    # reads index entries only (~40 ms for 1.25 M), where (set_id, image_id) reads each row for `deleted`.
    db.execute("CREATE INDEX IF NOT EXISTS annotations_set_page ON annotations (set_id, deleted, image_id)")


@migrations()
def m007_imports_batch_counters(db: Database) -> None:
    # A bulk insert (import-openimages) adds to the set counters once per batch instead of one UPDATE
    # per row: while its transaction holds a set_id in bulk_counting, the insert trigger skips that
    # set's rows. The row is added and removed inside the batch's own transaction, so no other
    # connection ever sees it, and a crash rolls it back with the rows and the counts.
    db.executescript(
        """
        CREATE TABLE bulk_counting (set_id INTEGER PRIMARY KEY);
        DROP TRIGGER annotations_count_insert;
        CREATE TRIGGER annotations_count_insert AFTER INSERT ON annotations
        WHEN NEW.deleted = 0 AND NOT EXISTS (SELECT 1 FROM bulk_counting WHERE set_id = NEW.set_id)
        BEGIN
            UPDATE annotation_sets SET
                n_total = n_total + 1,
                n_good = n_good + (NEW.rating IS 'good'),
                n_bad = n_bad + (NEW.rating IS 'bad')
            WHERE id = NEW.set_id;
        END;
        """
    )


@migrations()
def m008_pages_layout_version(db: Database) -> None:
    # A set page opened by number starts from a mark (set_page_marks: the key of every `every`-th live
    # row of a set, in page order) instead of skipping up to half the set. layout_version counts the
    # changes to which live rows a set holds, in which order; marks built at another version are never
    # used. The counter triggers bump it in the UPDATE they already run (ratings leave it alone: they
    # do not move a row on the pages); a bulk insert bumps it with its once-per-batch counter UPDATE.
    db.executescript(
        """
        ALTER TABLE annotation_sets ADD COLUMN layout_version INTEGER NOT NULL DEFAULT 0;

        CREATE TABLE set_page_marks (
            set_id INTEGER NOT NULL,
            every INTEGER NOT NULL,
            mark INTEGER NOT NULL,
            version INTEGER NOT NULL,
            built_at REAL NOT NULL,
            image_id TEXT NOT NULL,
            annotation_id INTEGER NOT NULL,
            PRIMARY KEY (set_id, every, mark)
        ) WITHOUT ROWID;
        -- A set id can be used again after a delete: its new set must not find the old set's marks.
        CREATE TRIGGER annotation_sets_drop_marks AFTER DELETE ON annotation_sets
        BEGIN
            DELETE FROM set_page_marks WHERE set_id = OLD.id;
        END;

        DROP TRIGGER annotations_count_insert;
        CREATE TRIGGER annotations_count_insert AFTER INSERT ON annotations
        WHEN NEW.deleted = 0 AND NOT EXISTS (SELECT 1 FROM bulk_counting WHERE set_id = NEW.set_id)
        BEGIN
            UPDATE annotation_sets SET
                n_total = n_total + 1,
                n_good = n_good + (NEW.rating IS 'good'),
                n_bad = n_bad + (NEW.rating IS 'bad'),
                layout_version = layout_version + 1
            WHERE id = NEW.set_id;
        END;

        DROP TRIGGER annotations_count_delete;
        CREATE TRIGGER annotations_count_delete AFTER DELETE ON annotations
        WHEN OLD.deleted = 0
        BEGIN
            UPDATE annotation_sets SET
                n_total = n_total - 1,
                n_good = n_good - (OLD.rating IS 'good'),
                n_bad = n_bad - (OLD.rating IS 'bad'),
                layout_version = layout_version + 1
            WHERE id = OLD.set_id;
        END;

        -- Also on image_id and id: either moves a row on the set's pages.
        DROP TRIGGER annotations_count_update;
        CREATE TRIGGER annotations_count_update AFTER UPDATE OF rating, deleted, set_id, image_id, id
        ON annotations
        BEGIN
            UPDATE annotation_sets SET
                n_total = n_total - (OLD.deleted = 0),
                n_good = n_good - (OLD.deleted = 0 AND OLD.rating IS 'good'),
                n_bad = n_bad - (OLD.deleted = 0 AND OLD.rating IS 'bad'),
                layout_version = layout_version + (OLD.deleted = 0 AND (NEW.deleted != 0
                    OR NEW.set_id IS NOT OLD.set_id OR NEW.image_id IS NOT OLD.image_id OR NEW.id != OLD.id))
            WHERE id = OLD.set_id;
            UPDATE annotation_sets SET
                n_total = n_total + (NEW.deleted = 0),
                n_good = n_good + (NEW.deleted = 0 AND NEW.rating IS 'good'),
                n_bad = n_bad + (NEW.deleted = 0 AND NEW.rating IS 'bad'),
                layout_version = layout_version + (NEW.deleted = 0 AND (OLD.deleted != 0
                    OR NEW.set_id IS NOT OLD.set_id OR NEW.image_id IS NOT OLD.image_id OR NEW.id != OLD.id))
            WHERE id = NEW.set_id;
        END;
        """
    )


@migrations()
def m009_page_marks_built_at(db: Database) -> None:
    # Marks remember when they were built (a stale set's marks are rebuilt at most every
    # REBUILD_AFTER_S). m008 first shipped without built_at and was later edited to add it, so a
    # store may hold either table; marks are a cache rebuilt on demand, so both are replaced by the
    # one final table (the same columns in the same order whichever m008 a store ran).
    db.executescript(
        """
        DROP TABLE set_page_marks;
        CREATE TABLE set_page_marks (
            set_id INTEGER NOT NULL,
            every INTEGER NOT NULL,
            mark INTEGER NOT NULL,
            version INTEGER NOT NULL,
            built_at REAL NOT NULL,
            image_id TEXT NOT NULL,
            annotation_id INTEGER NOT NULL,
            PRIMARY KEY (set_id, every, mark)
        ) WITHOUT ROWID;
        """
    )


@migrations()
def m010_runs_pid_host(db: Database) -> None:
    # A run killed with -9 never writes its end: the process (pid on host) that runs it is recorded so
    # that a list can tell a running job from one whose process is gone.
    db.executescript(
        """
        ALTER TABLE runs ADD COLUMN pid INTEGER;
        ALTER TABLE runs ADD COLUMN host TEXT;
        """
    )


@migrations()
def m011_sets_corrected_counter(db: Database) -> None:
    # How many of a set's annotations a person corrected in the editor (a human row whose origin_id
    # points into the set), kept by triggers like the other counters so the review page's counters
    # read one row. An origin counts once however many human rows point at it (a fetched set may
    # bring a second one); a correction later deleted in the editor still counts ("removed by").
    db.executescript(
        """
        ALTER TABLE annotation_sets ADD COLUMN n_corrected INTEGER NOT NULL DEFAULT 0;

        UPDATE annotation_sets SET n_corrected = (
            SELECT count(DISTINCT h.origin_id) FROM annotations h JOIN annotations m ON m.id = h.origin_id
            WHERE h.origin_id IS NOT NULL AND m.set_id = annotation_sets.id
        );

        CREATE TRIGGER annotations_corrected_insert AFTER INSERT ON annotations
        WHEN NEW.origin_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM annotations o WHERE o.origin_id = NEW.origin_id AND o.id != NEW.id)
        BEGIN
            UPDATE annotation_sets SET n_corrected = n_corrected + 1
            WHERE id = (SELECT set_id FROM annotations WHERE id = NEW.origin_id);
        END;

        CREATE TRIGGER annotations_corrected_delete AFTER DELETE ON annotations
        WHEN OLD.origin_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM annotations o WHERE o.origin_id = OLD.origin_id)
        BEGIN
            UPDATE annotation_sets SET n_corrected = n_corrected - 1
            WHERE id = (SELECT set_id FROM annotations WHERE id = OLD.origin_id);
        END;
        """
    )


@migrations()
def m012_runs_process_start(db: Database) -> None:
    # A pid is reused once its process is gone: the process's start time (clock ticks since boot, from
    # /proc) tells the run's own process from a later one with the same pid.
    db.execute("ALTER TABLE runs ADD COLUMN pid_start INTEGER")


@migrations()
def m013_image_folders(db: Database) -> None:
    # The folders imports took image files from: only files inside these (and the configured image
    # folders) are ever served, whatever path an image row holds (app/images/allowed.py).
    db.executescript(
        """
        CREATE TABLE image_folders (
            path TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            added_at TEXT NOT NULL
        );
        """
    )


@migrations()
def m014_sessions(db: Database) -> None:
    # Logins kept on the server, so that logout, a password change, disabling a user or an admin
    # ends a session for good even when its cookie was copied (app/auth/sessions.py).
    db.executescript(
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users (id),
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            address TEXT,
            ended_at TEXT,
            ended_reason TEXT
        );
        CREATE INDEX sessions_user ON sessions (user_id) WHERE ended_at IS NULL;
        """
    )


@migrations()
def m015_superseded(db: Database) -> None:
    # A newer bulk run over the same faces supersedes the older runs' unrated rows of those faces
    # (app/sets/supersede.py). A superseded row is kept (deleted = 2, superseded_by = the newer set)
    # and, like a deleted one, leaves the queue, the set pages and the exports: every reader that
    # asks for deleted = 0 already leaves it out, over the same indexes, and the counter triggers
    # already take it out of n_total. n_superseded counts them per set for the dashboard and the
    # set pages; its own triggers leave m008's counter triggers as they are.
    db.executescript(
        """
        ALTER TABLE annotations ADD COLUMN superseded_by INTEGER REFERENCES annotation_sets (id);
        ALTER TABLE annotation_sets ADD COLUMN n_superseded INTEGER NOT NULL DEFAULT 0;

        CREATE TRIGGER annotations_count_superseded_insert AFTER INSERT ON annotations
        WHEN NEW.deleted = 2
        BEGIN
            UPDATE annotation_sets SET n_superseded = n_superseded + 1 WHERE id = NEW.set_id;
        END;

        CREATE TRIGGER annotations_count_superseded_delete AFTER DELETE ON annotations
        WHEN OLD.deleted = 2
        BEGIN
            UPDATE annotation_sets SET n_superseded = n_superseded - 1 WHERE id = OLD.set_id;
        END;

        CREATE TRIGGER annotations_count_superseded_update AFTER UPDATE OF deleted, set_id ON annotations
        WHEN OLD.deleted = 2 OR NEW.deleted = 2
        BEGIN
            UPDATE annotation_sets SET n_superseded = n_superseded - (OLD.deleted = 2) WHERE id = OLD.set_id;
            UPDATE annotation_sets SET n_superseded = n_superseded + (NEW.deleted = 2) WHERE id = NEW.set_id;
        END;
        """
    )


@migrations()
def m018_image_labels(db: Database) -> None:
    # Open Images' human-verified image-level labels (the *-annotations-human-imagelabels files):
    # confidence 1 = a person saw the class in the image, 0 = a person checked that it is absent.
    # The detection metric needs both: a detection of a class verified absent is a false positive,
    # one of a class nobody verified on that image is ignored. One row per image and class; the
    # label index serves "images where class X was verified".
    db.executescript(
        """
        CREATE TABLE image_labels (
            image_id TEXT NOT NULL REFERENCES images (id),
            label TEXT NOT NULL,
            confidence INTEGER NOT NULL CHECK (confidence IN (0, 1)),
            source TEXT,
            PRIMARY KEY (image_id, label)
        ) WITHOUT ROWID;
        CREATE INDEX image_labels_label ON image_labels (label, confidence);
        """
    )


@migrations()
def m018_class_hierarchy(db: Database) -> None:
    # Open Images' class hierarchy (bbox_labels_600_hierarchy.json: "Subcategory" edges, e.g. Man is
    # a Person), which its challenge evaluation applies to the ground truth: a box of Man is also one
    # of Person, a positive label goes up to every ancestor and a negative one down to every
    # descendant. One row per edge; the tree is small (about 600 classes) and read whole.
    db.executescript(
        """
        CREATE TABLE class_hierarchy (
            label TEXT NOT NULL,
            parent TEXT NOT NULL,
            PRIMARY KEY (label, parent)
        ) WITHOUT ROWID;
        """
    )


@migrations()
def m022_ratings_action(db: Database) -> None:
    # One action, one undo: the ratings one action wrote together ("all faces in this image are
    # good") share action_id, the id of the action's first rating, so undo takes all of them back.
    # A single rating leaves it NULL. Older rows stay NULL: each was its own undo before.
    db.executescript("ALTER TABLE ratings ADD COLUMN action_id INTEGER;")


@migrations()
def m019_object_class_indexes(db: Database) -> None:
    # Review and set pages filtered by class (an object box's label): without these, the queue for a
    # rare class walks the whole set's queue index to find the next box of that class. Partial
    # (kind = 'object_box'), so faces and landmarks, the bulk of a store, pay nothing on insert;
    # the queries name the kind as a literal so that SQLite may use them.
    db.executescript(
        """
        CREATE INDEX IF NOT EXISTS annotations_queue_class
            ON annotations (set_id, label, deleted, rating, score, id) WHERE kind = 'object_box';
        CREATE INDEX IF NOT EXISTS annotations_page_class
            ON annotations (set_id, label, deleted, image_id, id) WHERE kind = 'object_box';
        """
    )


@migrations()
def m020_annotation_masks(db: Database) -> None:
    # object_mask rows keep their instance mask in the row, as COCO compressed RLE JSON
    # {"size": [h, w], "counts": "..."} over the whole image on the stored file's pixel grid (like the
    # boxes): a few hundred bytes per mask, versioned, rated and merged with the row
    # (app/annotations/masks.py). NULL for every other kind.
    db.execute("ALTER TABLE annotations ADD COLUMN mask TEXT")


@migrations()
def m023_landmarks68_default_attention(db: Database) -> None:
    # The default face_landmarks68 model changed from the builtin facemesh68 to attention68 (issue 16:
    # NME 0.058 -> 0.048 on faces-dev's testing file). A store whose active 68-point model is still the
    # builtin facemesh68 that an older version made active as the default (its activation replaced no
    # other model: `before.active` is null, or there is no event) retires it, once, here; then
    # models.builtin.ensure_builtin_models() activates this version's default, as on a new store. A
    # facemesh68 made active over another model (a person's `models activate`), and every trained or
    # added model, stays active. The retirement is logged in the audit log.
    rows = db.execute(
        "SELECT id FROM models WHERE kind = 'face_landmarks68' AND status = 'active'"
        " AND source = 'builtin' AND name = 'facemesh68'"
    ).fetchall()
    for (model_id,) in rows:
        last = db.execute(
            "SELECT json_extract(before, '$.active') FROM events WHERE action = 'activate_model'"
            " AND target_type = 'model' AND target_id = ? ORDER BY id DESC LIMIT 1",
            [str(model_id)],
        ).fetchone()
        if last is not None and last[0] is not None:
            over = db.execute("SELECT source, name FROM models WHERE id = ?", [last[0]]).fetchone()
            # A builtin facemesh68 replacing its own older row (a re-exported file) was automatic too.
            if over is None or tuple(over) != ("builtin", "facemesh68"):
                continue
        db.execute("UPDATE models SET status = 'retired' WHERE id = ?", [model_id])
        db.execute(
            "INSERT INTO events (at, action, target_type, target_id, before, after) VALUES"
            " (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), 'retire_old_default', 'model', ?, ?, ?)",
            [str(model_id), json.dumps({"active": model_id}), json.dumps({"active": None})],
        )
