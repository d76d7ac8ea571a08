"""The one error the matcher's parts raise for a request they refuse (the catalog, the media
intake); the routes turn it into HMA's ``{"message": ...}`` answer with its status."""

from __future__ import annotations


class Refused(ValueError):
    """``status`` is the HTTP status HMA answers with, ``message`` its text."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
