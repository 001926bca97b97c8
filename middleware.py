"""ASGI middleware that guards the process: request bodies have a size limit."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema.errors import refused_request_body


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses bodies over a limit with 413 before they are held in memory.

    A declared Content-Length is checked up front; a streamed body is counted as it
    arrives. Multipart uploads (code imports) get their own, larger limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        upload = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.max_upload_bytes if upload else self.max_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracking)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = JSONResponse(
            refused_request_body(f"The request body is larger than {limit} bytes."),
            status_code=413,
        )
        await response(scope, receive, send)
