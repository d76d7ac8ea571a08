"""The survivor's local app (``ncii-hash app``): a page on 127.0.0.1 that hashes the pictures
and videos she chooses in this process, shows exactly what would be sent, saves it or sends it
to the hub she names, and checks or withdraws her case. See docs/app.md.

Parts: :mod:`.security` (token, cookie, Host, Origin, headers), :mod:`.uploads` (bodies read in
memory), :mod:`.hashing` (bytes to hashes and thumbnails), :mod:`.state` (what is kept, and
when to stop), :mod:`.pages` (assets and message catalogues), :mod:`.routes` (the FastAPI app)
and :mod:`.server` (running it)."""

from .routes import create_app
from .security import AppKeys
from .server import run_app
from .state import AppState

__all__ = ["AppKeys", "AppState", "create_app", "run_app"]
