"""The exchange hub (docs/hub.md): survivors open cases with a PIN, partners fetch a
StopNCII-compatible feed and send feedback. ``create_hub_app`` builds the FastAPI app over a
:class:`HubStore`; ``serve`` runs it on uvicorn."""

from .app import create_hub_app
from .context import HubSettings
from .credentials import SecretCost
from .store import HubStore, open_hub_store

__all__ = ["create_hub_app", "HubSettings", "HubStore", "SecretCost", "open_hub_store"]
