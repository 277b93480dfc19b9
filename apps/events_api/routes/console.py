"""The web console (apps/web), served by events-api at `/console/`, same origin as `/api/`.

Same origin on purpose: the console calls `/api/v1/...` with no CORS policy to get right, and
the events-api image (which copies apps/events_api/) ships the bundle from `console/` inside
the package. When that bundle is absent (not built) the API works as before and `/console/`
answers 503 with the command that builds it.

Every console response carries a Content-Security-Policy that allows only the bundle's own
files (no inline script or style, no eval, no other origin) and the usual hardening headers.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/console"
BUILD_COMMAND = "npm --prefix apps/web ci && npm --prefix apps/web run build"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "require-trusted-types-for 'script'",
    )
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
# Vite names every built asset by its content hash: a changed file is a new URL.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


class ConsoleFiles:
    """The built bundle with security and cache headers, or how to build it when absent."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files = StaticFiles(directory=directory, html=True, check_dir=False)

    def built(self) -> bool:
        return (self.directory / "index.html").is_file()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        cache = IMMUTABLE if path.startswith(f"{PREFIX}/assets/") else REVALIDATE

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                for name, value in (*SECURITY_HEADERS.items(), ("Cache-Control", cache)):
                    headers.append((name.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        app: ASGIApp = self._files if self.built() else _not_built
        try:
            await app(scope, receive, with_headers)
        except HTTPException as exc:  # StaticFiles' 404/405: answer here, with the headers
            await PlainTextResponse(str(exc.detail), status_code=exc.status_code)(
                scope, receive, with_headers
            )


_not_built = PlainTextResponse(
    "The web console is not built. From the repository root run:\n\n"
    f"    {BUILD_COMMAND}\n\n"
    "then reload this page (no restart needed). The API under /api/ works without it.\n",
    status_code=503,
)


def install(app: FastAPI, directory: Path) -> None:
    """Mount the console at /console/ and send `/` and `/console` there."""

    async def to_console() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    app.add_api_route("/", to_console, methods=["GET"], include_in_schema=False)
    app.add_api_route(PREFIX, to_console, methods=["GET"], include_in_schema=False)
    app.mount(PREFIX, ConsoleFiles(directory), name="console")
