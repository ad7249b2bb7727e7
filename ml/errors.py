"""Typed refusals for uploaded images.

Every refusal is an :class:`ImageRejected` (a ``ValueError``) with a stable ``code`` that the
site can store and translate, and a ``str()`` that a watcher can act on without knowing
anything about image formats.
"""

from __future__ import annotations


class ImageRejected(ValueError):
    """An image we will not process. ``code`` is stable; ``str(err)`` is for people."""

    code = "rejected"
    default_message = "This image could not be used."

    def __init__(self, message: str | None = None, *, detail: str | None = None):
        self.message = message or self.default_message
        self.detail = detail  # technical reason, for logs only
        super().__init__(self.message)

    def __str__(self) -> str:  # never the technical detail
        return self.message


class NotAnImage(ImageRejected):
    code = "not_an_image"
    default_message = "This file is not an image we can read (JPEG, PNG, WebP, TIFF or HEIC)."


class CorruptImage(ImageRejected):
    code = "corrupt"
    default_message = (
        "This image is damaged or incomplete (perhaps the upload was cut short). "
        "Please export it again from your camera or phone and upload the new file."
    )


class ImageTooSmall(ImageRejected):
    code = "too_small"
    default_message = "This image is too small to identify a whale. Please upload the original, full-size photo."


class ImageTooLarge(ImageRejected):
    code = "too_large"
    default_message = (
        "This image has too many pixels for us to process. Please upload a smaller version (under 60 megapixels)."
    )


__all__ = ["ImageRejected", "NotAnImage", "CorruptImage", "ImageTooSmall", "ImageTooLarge"]
