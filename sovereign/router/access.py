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

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from sovereign.router.callers import LOCAL, Caller, Registry
from sovereign.router.config import RouterSettings, is_loopback
from sovereign.service import door


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


class HostGuard(door.HostGuard):
    """The kit's Host/Origin guard (sovereign/service/door.py) with the router's names and origins,
    refusing in OpenAI's error shape."""

    def __init__(self, app: ASGIApp, settings: RouterSettings) -> None:
        super().__init__(app, service="router", listen_host=settings.listen.host,
                         allowed_hosts=settings.listen.allowed_hosts, origins=settings.listen.cors_origins,
                         origins_key="listen.cors_origins", respond=_refused)


def _refused(refusal: door.Refusal) -> JSONResponse:
    return Denied(refusal.status, refusal.message, refusal.code, "permission_error").response()


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
