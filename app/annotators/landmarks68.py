"""The face_landmarks68 annotators by name, and which one is the default."""

from .template68 import TemplateLandmarks68

NAMES = ("template68",)
DEFAULT_LANDMARKS68 = "template68"

_instances: dict = {}


def get_landmarks68(name: str = DEFAULT_LANDMARKS68):
    """The annotator called name (one instance per process): .predict(img, box, points5=None)."""
    if name not in NAMES:
        raise ValueError(f"unknown face_landmarks68 annotator {name!r}; known: {', '.join(NAMES)}")
    if name not in _instances:
        _instances[name] = TemplateLandmarks68()
    return _instances[name]
