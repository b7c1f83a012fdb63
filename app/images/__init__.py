"""Serving image files: originals, resized copies and crops, cached on disk."""
