"""The HTTP server of ``pairgan serve``: uvicorn's h11 protocol with its limits set, and a deadline
for a request's headers.

uvicorn drops an idle keep-alive connection (``timeout_keep_alive``) and bounds one incomplete
request line + headers (``h11_max_incomplete_event_size``) and the open connections
(``limit_concurrency``, 503 beyond), but a client that sends part of its headers and then waits is
held open for ever: :class:`HeaderDeadlineH11Protocol` closes a connection whose request headers
have not all arrived ``header_timeout`` seconds after its first byte (or after it was opened).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeaderDeadlineH11Protocol", "ServerOptions", "make_server", "run_server"]


@dataclass
class ServerOptions:
    """Connection limits of the server (safe defaults for a server on a network)."""

    #: Seconds a client has to send a whole request line and headers; then the connection is closed.
    header_timeout: float = 10.0
    #: Seconds an idle keep-alive connection is kept.
    keep_alive_timeout: int = 5
    #: Largest request line + headers in bytes (h11's incomplete-event limit); larger: 400.
    max_header_bytes: int = 16 * 1024
    #: Connections (and requests) served at once; more are answered 503.
    max_connections: int = 64


class HeaderDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that closes a connection whose request headers take longer than
    :attr:`header_timeout` seconds (a slow-headers client ties up a connection otherwise)."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.logger.warning("closing a connection whose request headers took longer than %g s",
                                self.header_timeout)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        cycle_before = self.cycle
        if cycle_before is None or cycle_before.response_complete:
            self._arm_header_deadline()  # between requests: the next one's headers are on the clock
        super().data_received(data)
        if self.cycle is not cycle_before:  # a new request's headers were parsed
            self._disarm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)


def make_server(app: Any, host: str, port: int, options: ServerOptions | None = None) -> uvicorn.Server:
    """A uvicorn server of ``app`` on ``host:port`` under ``options`` (``.run()`` serves)."""
    options = options or ServerOptions()
    protocol = type("PairganH11Protocol", (HeaderDeadlineH11Protocol,), {"header_timeout": options.header_timeout})
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", http=protocol,
                            timeout_keep_alive=options.keep_alive_timeout,
                            h11_max_incomplete_event_size=options.max_header_bytes,
                            limit_concurrency=options.max_connections)
    return uvicorn.Server(config)


def run_server(app: Any, host: str, port: int, options: ServerOptions | None = None) -> None:
    """Serve ``app`` on ``host:port`` with uvicorn under ``options`` (blocks until stopped)."""
    make_server(app, host, port, options).run()
