"""The SVG editor for face boxes and landmark points."""
