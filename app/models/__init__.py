"""The models page: metrics, curves, promotion, and trying a model on an image."""
