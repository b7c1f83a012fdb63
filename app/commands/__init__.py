"""Command modules by area; importing each registers its commands on `oiap_cli`."""

import importlib

MODULES: list[str] = [
    "maintenance",
    "export",
    "share",
    "imports",
    "models",
    "annotate",
    "training",
]


def register_all() -> None:
    """Import every command module so its commands attach to the group."""
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
