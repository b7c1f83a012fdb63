"""Issue 16: a store whose active face_landmarks68 model is the old default (the builtin facemesh68)
switches to attention68 on upgrade (m023); a model a person chose, trained or added stays active."""

import shutil

from app.annotators.landmarks68 import BUILTIN
from app.db import connect, migrate
from app.migrations import migrations
from app.models.builtin import ensure_builtin_models, load_annotator
from app.models.registry import activate_model, active_model, register_model

M023 = "m023_landmarks68_default_attention"


def _old_store(tmp_path, name="old.db"):
    """A store as the version before m023 left it: migrated up to m023, facemesh68 registered."""
    db = connect(str(tmp_path / name))
    migrations.apply(db, stop_before=M023)
    info = BUILTIN["facemesh68"]
    fm = register_model(
        db,
        info["path"],
        "face_landmarks68",
        name="facemesh68",
        source="builtin",
        params={"runner": "landmarks68:facemesh68"},
        licence=info["licence"],
        origin=info["origin"],
    )
    db.conn.commit()
    return db, fm


def test_the_old_default_switches_to_attention68(tmp_path):
    db, fm = _old_store(tmp_path)
    activate_model(db, fm)  # what the older ensure_builtin_models did on a new store: nothing was active
    assert migrate(db) == [M023]
    assert db.execute("SELECT status FROM models WHERE id = ?", [fm]).fetchone()[0] == "retired"
    ensure_builtin_models(db)
    active = active_model(db, "face_landmarks68")
    assert (active["name"], active["source"]) == ("attention68", "builtin")
    assert type(load_annotator(active)).__name__ == "AttentionMesh68"
    events = [r[0] for r in db.execute("SELECT action FROM events WHERE target_id = ?", [str(fm)])]
    assert events == ["activate_model", "retire_old_default"]
    # Once: a person who activates facemesh68 again keeps it through later start-ups.
    activate_model(db, fm)
    assert migrate(db) == []
    ensure_builtin_models(db)
    assert active_model(db, "face_landmarks68")["id"] == fm


def test_a_chosen_facemesh68_stays(tmp_path):
    db, fm = _old_store(tmp_path)
    info = BUILTIN["template68"]
    tpl = register_model(
        db, info["path"], "face_landmarks68", name="template68", source="builtin",
        params={"runner": "landmarks68:template68"},
    )  # fmt: skip
    activate_model(db, tpl)
    activate_model(db, fm)  # chosen over template68: a person's choice
    migrate(db)
    ensure_builtin_models(db)
    assert active_model(db, "face_landmarks68")["id"] == fm


def test_an_added_model_stays(tmp_path):
    db, _ = _old_store(tmp_path)
    mine = tmp_path / "mine.onnx"
    shutil.copyfile(BUILTIN["facemesh68"]["path"], mine)
    with open(mine, "ab") as f:
        f.write(b"\0")  # another file (hash) than the builtin's, as a user's own model would be
    added = register_model(
        db, mine, "face_landmarks68", name="mine", source="added",
        params={"runner": "landmarks68:facemesh68"}, models_dir=tmp_path / "models",
    )  # fmt: skip
    activate_model(db, added)
    migrate(db)
    ensure_builtin_models(db)
    active = active_model(db, "face_landmarks68")
    assert (active["id"], active["source"]) == (added, "added")


def test_a_new_store_gets_attention68(tmp_path):
    db = connect(str(tmp_path / "new.db"))
    migrate(db)
    ensure_builtin_models(db)
    assert active_model(db, "face_landmarks68")["name"] == "attention68"
