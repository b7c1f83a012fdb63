"""Training and export: the only package that imports torch (requirements-train.txt)."""
