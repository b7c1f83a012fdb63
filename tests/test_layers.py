"""The import rules of DESIGN.md (.importlinter), checked by import-linter on the real tree, and shown to
catch a break on a copy of it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.paths import REPO_ROOT

LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    # A wide terminal, so that rich does not wrap the names we look for.
    env = {**os.environ, "COLUMNS": "300"}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def test_every_import_contract_is_kept():
    result = _lint(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _copy_tree(tmp_path: Path) -> Path:
    """The contracts and app/'s Python files (no models, no data), for breaking a rule on purpose."""
    root = tmp_path / "repo"
    shutil.copytree(
        REPO_ROOT / "app", root / "app", ignore=shutil.ignore_patterns("*.onnx", "demo_data", "__pycache__")
    )
    shutil.copy(REPO_ROOT / ".importlinter", root / ".importlinter")
    return root


def test_an_annotator_that_imports_the_store_breaks_a_contract(tmp_path):
    root = _copy_tree(tmp_path)
    assert _lint(root).returncode == 0
    (root / "app" / "annotators" / "leaky.py").write_text("from ..db import connect\n")
    result = _lint(root)
    assert result.returncode == 1
    assert "app.annotators is not allowed to import app.db" in result.stdout
    assert "app.annotators.leaky -> app.db" in result.stdout


def test_torch_outside_training_and_a_cycle_break_contracts(tmp_path):
    root = _copy_tree(tmp_path)
    (root / "app" / "sets" / "leaky.py").write_text("import torch\n\nfrom ..review import queries\n")
    (root / "app" / "review" / "queries.py").write_text(
        (root / "app" / "review" / "queries.py").read_text() + "\nfrom ..sets import leaky  # noqa\n"
    )
    out = _lint(root).stdout
    assert "app is not allowed to import torch" in out and "app.sets.leaky -> torch" in out
    assert "No cycles are allowed in app." in out
    assert "sets and models do not import the review queue" in out and "BROKEN" in out


@pytest.mark.slow
def test_test_training_collects_without_torch():
    # torch made unimportable (None in sys.modules): collecting the training tests must not need it;
    # they import torch inside the tests that train, which run it wherever it is installed.
    code = (
        "import sys; sys.modules['torch'] = None; import pytest;"
        " sys.exit(pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', 'tests/test_training.py']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test_a_whole_round" in result.stdout
