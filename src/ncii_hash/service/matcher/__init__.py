"""The HMA-compatible matcher (docs/matcher.md): HMA 2.0's routes, parameters and JSON shapes
over a :class:`~ncii_hash.bank.HashBank`, with a live index that follows the store's change
log and micro-batched lookups. ``create_matcher_app`` builds the ASGI app over a
:class:`Matcher`; ``server.serve`` runs it on uvicorn."""

from .app import create_matcher_app
from .matcher import DEFAULT_BACKEND, Matcher, MatcherSettings

__all__ = ["DEFAULT_BACKEND", "Matcher", "MatcherSettings", "create_matcher_app"]
