"""The ``ncii-hash`` command. Nothing in the library imports this package."""

from .commands import build_parser, main

__all__ = ["build_parser", "main"]
