"""FastAPI dependencies: the hub context, the partner a request authenticates as, the raw
body of a submission."""

from __future__ import annotations

from typing import Optional

from fastapi import Header, HTTPException, Request

from .context import HubContext


def hub(request: Request) -> HubContext:
    return request.app.state.hub


def client_address(request: Request) -> str:
    """The peer's address, for the in-memory throttle only (never stored or logged)."""
    return request.client.host if request.client else "-"


async def raw_body(request: Request) -> bytes:
    return await request.body()


def partner(request: Request,
            x_functions_key: Optional[str] = Header(None, alias="x-functions-key"),
            subscription_key: Optional[str] = Header(None, alias="Ocp-Apim-Subscription-Key")) -> str:
    """The id of the partner whose keys the request carries; 401 otherwise."""
    if not x_functions_key or not subscription_key:
        raise HTTPException(401, "missing partner keys (x-functions-key and Ocp-Apim-Subscription-Key)")
    partner_id = hub(request).keys.partner_for(x_functions_key, subscription_key)
    if partner_id is None:
        raise HTTPException(401, "unknown or revoked partner keys")
    return partner_id
