"""The identification pipeline: what a worker does with a photo after upload (``process``), with a
new model version (``reembed``), and the per-process state it keeps (``cache``, ``gallery_sync``)."""

from . import cache, gallery_sync


def reset() -> None:
    """Forget every per-process cache: the identifiers and the gallery index (tests, or after a fork)."""
    cache.reset()
    gallery_sync.reset()
