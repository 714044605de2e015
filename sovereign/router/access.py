"""The router's door: whose names a request may use, who is asking, and what they may see.

- **Host and Origin.** A request whose `Host` is not one of the router's own
  names (listen.host, `listen.allowed_hosts`, this machine's hostname,
  localhost and the loopback addresses) is refused with 403, and so is one
  whose `Origin` is neither one of them nor in `listen.cors_origins`: a web
  page that rebinds its own DNS name to the router's address still sends its
  own name, so "only on localhost" stays true for browsers too. CORS stays
  off unless `listen.cors_origins` names origins.
- **Callers.** With `auth.mode: keys` (the default) the API needs a caller's
  key as `Authorization: Bearer <key>` (callers.py); a missing, unknown or
  revoked one gets 401 in OpenAI's error shape. With `auth.mode: none` every
  request is the loopback caller `local` (the settings refuse that mode on any
  address but a loopback one).
- **Detail.** `/metrics` and the detail of `/health` (tier endpoints, the
  store's address, the embedder's path) are for an admin key or a client on a
  loopback address; anyone else gets the status and each tier's name and
  state.
"""

from __future__ import annotations

import socket
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sovereign.router.callers import LOCAL, Caller, Registry
from sovereign.router.config import LOOPBACK_NAMES, RouterSettings, is_loopback


def error(status: int, message: str, *, type_: str = "invalid_request_error", param: str | None = None,
          code: str | None = None, extra: dict[str, Any] | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    """An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    body: dict[str, Any] = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    if extra:
        body["sovereign"] = extra
    return JSONResponse(body, status_code=status, headers=headers)


class Denied(Exception):
    def __init__(self, status: int, message: str, code: str, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type = status, message, code, type_

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="sovereign-router"'} if self.status == 401 else None
        return error(self.status, self.message, type_=self.type, code=self.code, headers=headers)


def host_of(value: str) -> str:
    """The host part of a Host header or an origin's authority, lower-case, without the port."""
    value = value.strip().lower()
    if "://" in value:
        value = value.split("://", 1)[1].split("/", 1)[0]
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def own_names(settings: RouterSettings) -> set[str]:
    names = {*LOOPBACK_NAMES, *(h.lower() for h in settings.listen.allowed_hosts)}
    if settings.listen.host not in ("0.0.0.0", "::", ""):  # noqa: S104 (a wildcard names no one)
        names.add(settings.listen.host.lower())
    for name in (socket.gethostname(), socket.getfqdn()):
        names.add(name.lower())
    return names


class HostGuard:
    """ASGI middleware: a Host or Origin that is not the router's own gets 403 before any route runs."""

    def __init__(self, app: ASGIApp, settings: RouterSettings) -> None:
        self.app = app
        self.names = own_names(settings)
        self.origins = {o.rstrip("/").lower() for o in settings.listen.cors_origins}

    def problem(self, headers: dict[bytes, bytes]) -> Denied | None:
        host = headers.get(b"host", b"").decode("latin-1")
        if host and host_of(host) not in self.names:
            return Denied(403, f"Host {host_of(host)!r} is not one of this router's names "
                          "(listen.allowed_hosts)", "host_not_allowed", "permission_error")
        origin = headers.get(b"origin", b"").decode("latin-1")
        if origin and origin != "null" and origin.rstrip("/").lower() not in self.origins \
                and host_of(origin) not in self.names:
            return Denied(403, f"Origin {origin!r} may not call this router (listen.cors_origins)",
                          "origin_not_allowed", "permission_error")
        if origin == "null":
            return Denied(403, "Origin null may not call this router", "origin_not_allowed",
                          "permission_error")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            denied = self.problem(dict(scope.get("headers") or []))
            if denied is not None:
                await denied.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Door:
    """Who is asking, by the request's key."""

    def __init__(self, settings: RouterSettings, registry: Registry) -> None:
        self.open = settings.auth.mode == "none"
        self.registry = registry

    @staticmethod
    def _key(request: Request) -> str | None:
        value = request.headers.get("authorization", "")
        scheme, _, key = value.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        return key.strip()

    def admit(self, request: Request) -> Caller:
        """The caller of a request to the API, else Denied (401)."""
        if self.open:
            return LOCAL
        key = self._key(request)
        if key is None:
            hint = "" if self.registry.count() else (" (this router has no caller keys yet: "
                                                     "`sovereign router keys add NAME`)")
            raise Denied(401, "no API key: send a caller's key as `Authorization: Bearer <key>`" + hint,
                         "missing_api_key")
        caller = self.registry.authenticate(key)
        if caller is None:
            raise Denied(401, "incorrect API key provided (unknown or revoked)", "invalid_api_key")
        return caller

    def caller_if_any(self, request: Request) -> Caller | None:
        try:
            return self.admit(request)
        except Denied:
            return None

    def sees_detail(self, request: Request) -> bool:
        """An admin key, or a client on a loopback address."""
        if request.client is not None and is_loopback(request.client.host):
            return True
        caller = self.caller_if_any(request)
        return caller is not None and caller.admin


def health_summary(body: dict[str, Any]) -> dict[str, Any]:
    """What /health shows to anyone: the status and each tier's name, kind and state."""
    return {"status": body["status"],
            "tiers": {name: {"kind": t["kind"], "ok": t["ok"]} for name, t in body["tiers"].items()},
            "store": {"ok": body["store"]["ok"]},
            "detail": "tier endpoints, the store and the budget: an admin key, or a loopback client"}
