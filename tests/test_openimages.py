import os

import pytest

from app.errors import InvalidInput, NotFound
from app.images.layout import check_layout, image_path, is_image_id, validate_image_id
from app.paths import REPO_ROOT

TRAIN_ID = "0a1b2c3d4e5f6a7b"
TRAIN_F_ID = "f0e1d2c3b4a59687"
VAL_ID = "1234567890abcdef"
TEST_ID = "fedcba0987654321"


@pytest.mark.parametrize("value", ["000002b66c9c498e", "0123456789abcdef"])
def test_valid_ids(value):
    assert validate_image_id(value) == value and is_image_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "000002B66C9C498E",
        "000002b66c9c498",
        "000002b66c9c498ee",
        "../../etc/passwd",
        "/abs/0123456789ab",
        "000002b66c9c498g",
        " 000002b66c9c498e",
        None,
        123,
    ],
)
def test_bad_ids_are_refused_naming_the_value(value):
    with pytest.raises(InvalidInput) as e:
        validate_image_id(value, "ids.csv line 3")
    assert (
        repr(value) in str(e.value)
        and "16 lowercase hex" in str(e.value)
        and "ids.csv line 3" in str(e.value)
    )
    assert not is_image_id(value)


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff")
    return path


def test_per_character_archive_layout(tmp_path):
    f = _touch(tmp_path / f"train_0/{TRAIN_ID}.jpg")
    v = _touch(tmp_path / f"validation/{VAL_ID}.jpg")
    t = _touch(tmp_path / f"test/{TEST_ID}.jpg")
    cfg = {"OPEN_IMAGES_DIR": str(tmp_path)}
    assert image_path(cfg, {"id": TRAIN_ID, "split": "train", "path": None}) == f.resolve()
    assert image_path(cfg, {"id": VAL_ID, "split": "validation", "path": None}) == v.resolve()
    assert image_path(cfg, {"id": TEST_ID, "split": "test", "path": None}) == t.resolve()


def test_single_train_folder_layout(tmp_path):
    f = _touch(tmp_path / f"train/{TRAIN_F_ID}.jpg")
    cfg = {"OPEN_IMAGES_DIR": str(tmp_path)}
    assert image_path(cfg, {"id": TRAIN_F_ID, "split": "train", "path": None}) == f.resolve()


def test_map_layout(tmp_path):
    a = _touch(tmp_path / f"disk1/zero/{TRAIN_ID}.jpg")
    b = _touch(tmp_path / f"disk2/eff/{TRAIN_F_ID}.jpg")
    v = _touch(tmp_path / f"disk2/val/{VAL_ID}.jpg")
    t = _touch(tmp_path / f"disk3/{TEST_ID}.jpg")
    cfg = {
        "OPEN_IMAGES_DIR_MAP": {
            "0": str(tmp_path / "disk1/zero"),
            "f": str(tmp_path / "disk2/eff"),
            "validation": str(tmp_path / "disk2/val"),
            "test": str(tmp_path / "disk3"),
        }
    }
    assert image_path(cfg, {"id": TRAIN_ID, "split": "train"}) == a.resolve()
    assert image_path(cfg, {"id": TRAIN_F_ID, "split": "train"}) == b.resolve()
    assert image_path(cfg, {"id": VAL_ID, "split": "validation"}) == v.resolve()
    assert image_path(cfg, {"id": TEST_ID, "split": "test"}) == t.resolve()
    with pytest.raises(NotFound, match="no file found"):
        image_path(cfg, {"id": "1" * 16, "split": "train"})


def test_bad_map_is_refused():
    with pytest.raises(InvalidInput, match="unknown keys"):
        check_layout({"OPEN_IMAGES_DIR_MAP": {"train_0": "/x"}})
    with pytest.raises(InvalidInput, match="JSON object"):
        check_layout({"OPEN_IMAGES_DIR_MAP": "/x"})


def test_missing_file_and_missing_config_say_so(tmp_path):
    with pytest.raises(NotFound, match="tried .*train_0"):
        image_path({"OPEN_IMAGES_DIR": str(tmp_path)}, {"id": TRAIN_ID, "split": "train"})
    with pytest.raises(NotFound, match="OPEN_IMAGES_DIR"):
        image_path({}, {"id": TRAIN_ID, "split": "train"})


def test_symlink_escaping_the_folder_is_refused(tmp_path):
    secret = tmp_path / "outside" / "secret.jpg"
    _touch(secret)
    root = tmp_path / "oi"
    (root / "train_0").mkdir(parents=True)
    os.symlink(secret, root / "train_0" / f"{TRAIN_ID}.jpg")
    with pytest.raises(NotFound):
        image_path({"OPEN_IMAGES_DIR": str(root)}, {"id": TRAIN_ID, "split": "train"})


def test_symlinked_archive_folder_is_allowed(tmp_path):
    # A train_<c> folder that is a link to another disk is a normal setup.
    f = _touch(tmp_path / "disk9" / f"{TRAIN_ID}.jpg")
    root = tmp_path / "oi"
    root.mkdir()
    os.symlink(tmp_path / "disk9", root / "train_0")
    assert image_path({"OPEN_IMAGES_DIR": str(root)}, {"id": TRAIN_ID, "split": "train"}) == f.resolve()


def test_bad_id_never_reaches_the_filesystem(tmp_path):
    with pytest.raises(InvalidInput):
        image_path({"OPEN_IMAGES_DIR": str(tmp_path)}, {"id": "../../../etc/passwd", "split": "train"})


def test_stored_paths(tmp_path):
    f = _touch(tmp_path / "x.jpg")
    assert image_path({}, {"id": TRAIN_ID, "split": "train", "path": str(f)}) == f
    demo = "app/demo_data/astronaut.png"
    assert image_path({}, {"id": TRAIN_ID, "split": "train", "path": demo}) == REPO_ROOT / demo
    with pytest.raises(InvalidInput, match="leaves the repository"):
        image_path({}, {"id": TRAIN_ID, "split": "train", "path": "../etc/passwd"})
    with pytest.raises(NotFound, match="missing"):
        image_path({}, {"id": TRAIN_ID, "split": "train", "path": str(tmp_path / "gone.jpg")})
