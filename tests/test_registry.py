import pytest

from app.errors import InvalidInput
from app.models.registry import activate_model, active_model, get_model, register_model, verified_path


def test_register_activate_and_hash_check(db, tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"model one")
    models = tmp_path / "models"
    a = register_model(db, f, "face_box", models_dir=models)
    assert register_model(db, f, "face_box", models_dir=models) == a
    g = tmp_path / "n.onnx"
    g.write_bytes(b"model two")
    b = register_model(db, g, "face_box", models_dir=models)
    activate_model(db, a)
    activate_model(db, b)
    assert active_model(db, "face_box")["id"] == b
    assert get_model(db, a)["status"] == "retired"
    stored = verified_path(get_model(db, b))
    stored.write_bytes(b"tampered")
    with pytest.raises(InvalidInput, match="sha256"):
        verified_path(get_model(db, b))
