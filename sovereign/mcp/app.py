"""The MCP data server's ASGI app: the door, then the key, then the SDK.

1. `HostGuard` (the kit's, sovereign/service/door.py): a Host or Origin that
   is not the server's own gets 403 (DNS rebinding);
2. `BearerGate`: every request carries a caller's key as
   `Authorization: Bearer <key>`; a missing or unknown one gets 401 in JSON.
   Keys are compared in constant time (`hmac.compare_digest`), against every
   caller's key, so the time taken says nothing about which nearly matched;
3. the SDK's streamable HTTP app at `/mcp`, stateless (each request stands
   alone: no session for another page to ride), answering in JSON.

The SDK's own Host/Origin check is off: the door does it, once, with the
server's configured names.
"""

from __future__ import annotations

import hmac
import logging

from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sovereign.mcp.settings import McpSettings
from sovereign.mcp.tools import Sources, build_server
from sovereign.service.door import HostGuard

log = logging.getLogger(__name__)
PATH = "/mcp"


def unauthorized(message: str, code: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "code": code}}, status_code=401,
                        headers={"WWW-Authenticate": 'Bearer realm="sovereign-mcp"'})


class BearerGate:
    """ASGI middleware: a request without a caller's key gets 401; with one,
    `scope["state"]["caller"]` names the caller."""

    def __init__(self, app: ASGIApp, callers: dict[str, bytes]) -> None:
        self.app = app
        self.callers = callers

    def caller(self, key: bytes) -> str | None:
        found = None
        for name, expected in self.callers.items():  # every key compared: constant in which one matched
            if hmac.compare_digest(key, expected) and found is None:
                found = name
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, key = value.partition(b" ")
        if scheme.lower() != b"bearer" or not key.strip():
            response = unauthorized("no key: send a caller's key as `Authorization: Bearer <key>`",
                                    "missing_key")
        elif (name := self.caller(key.strip())) is None:
            response = unauthorized("unknown key (not one of this server's callers)", "invalid_key")
        else:
            scope.setdefault("state", {})["caller"] = name
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def create_app(settings: McpSettings, sources: Sources) -> ASGIApp:
    """HostGuard -> BearerGate -> the SDK's streamable HTTP app over `sources`."""
    sdk = build_server(sources).streamable_http_app(
        streamable_http_path=PATH, stateless_http=True, json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    keys = {name: key.get_secret_value().strip().encode() for name, key in settings.callers.items()}
    listen = settings.listen
    return HostGuard(BearerGate(sdk, keys), service="MCP server", listen_host=listen.host,
                     allowed_hosts=listen.allowed_hosts, origins=listen.origins)
