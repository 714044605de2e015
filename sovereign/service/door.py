"""A service's door against DNS rebinding: whose names a request may use.

A request whose `Host` is not one of the service's own names (its listen
address, the names it is configured to answer to, this machine's hostname,
localhost and the loopback addresses) is refused with 403, and so is one whose
`Origin` is neither one of them nor an origin configured as allowed: a web
page that rebinds its own DNS name to the service's address still sends its
own name, so "only on localhost" stays true for browsers too. `Origin: null`
(a sandboxed page, a file) is always refused.

`HostGuard` is pure ASGI, outermost, so no route of the service runs first.
Each service shapes its own refusal (`respond`): the router answers in
OpenAI's error shape, the MCP server in its own JSON.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 (a wildcard address names no one)


@dataclass(frozen=True)
class Refusal:
    """Why the door refused a request: the HTTP status, a message and a stable code."""

    status: int
    message: str
    code: str


Respond = Callable[[Refusal], ASGIApp]


def plain_json(refusal: Refusal) -> ASGIApp:
    """The default refusal: {"error": {"message", "code"}}."""
    return JSONResponse({"error": {"message": refusal.message, "code": refusal.code}},
                        status_code=refusal.status)


def host_of(value: str) -> str:
    """The host part of a Host header or an origin's authority, lower-case, without the port."""
    value = value.strip().lower()
    if "://" in value:
        value = value.split("://", 1)[1].split("/", 1)[0]
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def own_names(listen_host: str, allowed_hosts: Iterable[str]) -> set[str]:
    """The names a service answers to: loopback, `allowed_hosts`, its listen address
    (unless a wildcard), this machine's hostname and FQDN."""
    names = {*LOOPBACK_NAMES, *(h.lower() for h in allowed_hosts)}
    if listen_host not in WILDCARDS:
        names.add(listen_host.lower())
    for name in (socket.gethostname(), socket.getfqdn()):
        names.add(name.lower())
    return names


class HostGuard:
    """ASGI middleware: a Host or Origin that is not the service's own gets 403 before any route runs.

    `service` names the service in the messages; `hosts_key` and `origins_key`
    name the settings a refused caller would change."""

    def __init__(self, app: ASGIApp, *, service: str, listen_host: str, allowed_hosts: Iterable[str] = (),
                 origins: Iterable[str] = (), hosts_key: str = "listen.allowed_hosts",
                 origins_key: str = "listen.origins", respond: Respond = plain_json) -> None:
        self.app = app
        self.service = service
        self.names = own_names(listen_host, allowed_hosts)
        self.origins = {o.rstrip("/").lower() for o in origins}
        self.hosts_key, self.origins_key = hosts_key, origins_key
        self.respond = respond

    def problem(self, headers: dict[bytes, bytes]) -> Refusal | None:
        host = headers.get(b"host", b"").decode("latin-1")
        if host and host_of(host) not in self.names:
            return Refusal(403, f"Host {host_of(host)!r} is not one of this {self.service}'s names "
                           f"({self.hosts_key})", "host_not_allowed")
        origin = headers.get(b"origin", b"").decode("latin-1")
        if origin == "null":
            return Refusal(403, f"Origin null may not call this {self.service}", "origin_not_allowed")
        if origin and origin.rstrip("/").lower() not in self.origins and host_of(origin) not in self.names:
            return Refusal(403, f"Origin {origin!r} may not call this {self.service} ({self.origins_key})",
                           "origin_not_allowed")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = self.problem(dict(scope.get("headers") or []))
            if refused is not None:
                await self.respond(refused)(scope, receive, send)
                return
        await self.app(scope, receive, send)
