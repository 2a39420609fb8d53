"""A deadline for receiving each request in ``tend web`` and ``tend run`` (slowloris).

uvicorn has no request-receipt timeout: its ``timeout_keep_alive`` covers only the idle
time between requests, and the first byte of the next request cancels it; so a client that
sends half a request line, or trickles header bytes, holds its connection (a file
descriptor, a place in the backlog) for ever. :class:`RequestTimeoutProtocol` is uvicorn's
h11 protocol with a deadline for the whole request, headers and body: armed when the
connection is made and again when each response is complete (keep-alive), disarmed once
the request is fully received, cancelled when the connection is lost. A deadline that
passes closes the connection, with a 408 first when nothing is being answered.

Not a replacement for a reverse proxy's limits: it bounds how long one connection can be
held, not how many a client opens.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from config.settings import REQUEST_TIMEOUT_SECONDS

__all__ = ["REQUEST_TIMEOUT_SECONDS", "RequestTimeoutProtocol", "with_request_timeout"]

log = logging.getLogger(__name__)

# While the client still owes the request: nothing yet, part of the request line or
# headers (IDLE), or part of the body (SEND_BODY). Any other state: received, or over.
_RECEIVING = (h11.IDLE, h11.SEND_BODY)
_TIMED_OUT = b"request not received in time\n"


class RequestTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request has not fully arrived
    within :attr:`request_timeout` seconds (see the module's documentation)."""

    request_timeout: ClassVar[float] = REQUEST_TIMEOUT_SECONDS

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]  # as uvicorn's own
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._disarm_once_received()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            self._disarm()
            return
        # The next request on this kept-alive connection gets a deadline of its own (it
        # may be in already: a pipelined one, handled by the call above).
        self._arm()
        self._disarm_once_received()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _disarm_once_received(self) -> None:
        # The app may take its time over a request fully received; only the client may not.
        if self.conn.their_state not in _RECEIVING:
            self._disarm()

    def _expired(self) -> None:
        self._deadline = None
        # After a protocol switch the transport is another protocol's to close.
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        cycle = self.cycle
        answering = cycle is not None and cycle.response_started and not cycle.response_complete
        begun = self.conn.their_state is h11.SEND_BODY or bool(self.conn.trailing_data[0])
        if cycle is not None and not cycle.response_complete:
            # The app waits for the rest of the body: it hears that the client has gone,
            # and whatever it answers now is not written (uvicorn's cycle drops it).
            cycle.disconnected = True
            cycle.message_event.set()
        # A 408 tells a client that has sent part of a request why it was closed; an idle
        # kept-alive connection is closed without a word, as uvicorn's keep-alive timer does.
        if begun and not answering:
            self._send_408()
        # Debug, not warning: a slowloris would flood the log at any louder level.
        log.debug("closed a connection: its request did not arrive in %ss", self.request_timeout)
        self.transport.close()

    def _send_408(self) -> None:
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(_TIMED_OUT)).encode()),
            (b"connection", b"close"),
        ]
        try:
            response = h11.Response(status_code=408, headers=headers, reason=b"Request Timeout")
            self.transport.write(self.conn.send(response) or b"")
            self.transport.write(self.conn.send(h11.Data(data=_TIMED_OUT)) or b"")
            self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            pass  # this request was answered already (early, before its body): just close


def with_request_timeout(seconds: float) -> type[RequestTimeoutProtocol]:
    """The protocol class with its deadline set to `seconds`, for ``uvicorn.Config(http=)``
    (which instantiates the class itself, so the setting travels on the class)."""
    if seconds <= 0:
        raise ValueError("the request timeout must be positive")
    return type("RequestTimeoutProtocol", (RequestTimeoutProtocol,), {"request_timeout": seconds})
