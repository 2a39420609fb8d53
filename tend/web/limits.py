"""Every request body is limited: a larger one is refused before a route reads it."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifiers.twilio_webhooks import MAX_BODY as TWILIO_MAX_BODY

__all__ = ["MAX_BODY", "BodyLimit"]

# No route takes more than a webhook's form: a larger body is refused before it is read.
MAX_BODY = TWILIO_MAX_BODY


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413, whether its
    Content-Length says so or a chunked body grows past it while it is read."""

    def __init__(
        self, app: ASGIApp, limit: int, refused: Callable[[str], None] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.refused = refused or (lambda path: None)  # told the path of each 413

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PlainTextResponse("request body too large", status_code=413)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await PlainTextResponse("bad Content-Length", status_code=400)(scope, receive, send)
            return
        if declared is not None and int(declared) > self.limit:
            self.refused(scope["path"])
            await too_large(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, sending)
        except _TooLarge:
            self.refused(scope["path"])
            if started:
                raise
            await too_large(scope, receive, send)


class _TooLarge(Exception):
    """A streamed body grew past the limit while the app read it."""
