"""How the service is served: uvicorn with connection limits that hold against slow and abusive clients.

uvicorn alone times out idle keep-alive connections but not a request whose head never
finishes, and its ``limit_concurrency`` counts open connections, so ~200 sockets that send
one header line and stop (slowloris) turned every other client away with 503s. Here each
connection gets, on top of uvicorn's h11 protocol:

- a **head timeout**: the request line and headers must arrive within ``head_timeout_s`` of the
  connection opening (or of the previous response), else the connection is closed;
- a **per-client cap**: at most ``max_per_client`` open connections from one address; more are
  closed as soon as they open, so one client cannot use up the server-wide cap;
- a **server-wide cap**: at most ``max_connections`` open connections in all.

The request body's deadline (``body_timeout_s``, answered 408) is applied by the app where it
reads the body. ``nas serve`` and the tests serve through :func:`server_config`, so the tests
exercise the defaults users get; ``docs/SECURITY.md`` says what to put in front for more.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class ConnectionLimits:
    """Limits on connections (see the module docstring); the defaults are ``nas serve``'s."""

    max_connections: int = 200
    max_per_client: int = 20
    head_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: int = 5

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.max_per_client < 1:
            raise ValueError("connection limits: --max-connections and --max-connections-per-client must be >= 1")
        if self.head_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise ValueError("connection limits: timeouts must be positive seconds")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a head timeout and per-client and server-wide connection caps."""

    limits: ConnectionLimits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else None
        same = sum(1 for c in self.connections if (getattr(c, "client", None) or (None,))[0] == address)
        if len(self.connections) > self.limits.max_connections or same > self.limits.max_per_client:
            self.transport.close()  # before a byte is read: connection_lost forgets it
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and self.conn.their_state is not h11.IDLE:
            self._disarm()  # the head is in: the app's body deadline takes over

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's head gets the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """The protocol class with ``limits`` (uvicorn instantiates the class it is given)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


def server_config(app: Any, host: str, port: int, limits: ConnectionLimits, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration of the service: h11 with :class:`GuardedH11Protocol` under
    ``limits``; ``options`` go to uvicorn (``ssl_certfile``, ``log_level``...)."""
    options.setdefault("log_level", "warning")
    return uvicorn.Config(
        app, host=host, port=port, http=guarded_protocol(limits), timeout_keep_alive=limits.keep_alive_s,
        limit_concurrency=None, **options,
    )  # fmt: skip


__all__ = ["ConnectionLimits", "GuardedH11Protocol", "guarded_protocol", "server_config"]
