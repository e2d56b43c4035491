"""What a browser may do with each answer: the web page's and ``/docs``' Content-Security-Policy (the page's
inline script and style by hash, Swagger UI's files pinned by Subresource Integrity) and the middleware that
adds them, with the no-sniffing, no-framing headers every answer carries."""

from __future__ import annotations

import hashlib
import re
from base64 import b64encode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mushroom.serving.protocol import NO_SNIFFING_OR_FRAMING, SECURITY_HEADERS

DOC_ROUTES = ("/docs",)


#: Swagger UI for /docs: one exact version from the CDN, each file checked by the browser against its hash
#: (Subresource Integrity; computed from the npm package swagger-ui-dist, which jsDelivr serves unchanged).
SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0"


SWAGGER_UI_FILES = {
    "swagger-ui-bundle.js": "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9",
    "swagger-ui.css": "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I",
}


DOCS_SCRIPT = "SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui'});"


class SecurityHeaders:
    """Headers that keep a browser from sniffing, framing or running anything the page did not ship.

    The web page may run only its own inline script and style (allowed by hash); API answers allow
    nothing at all; ``/docs`` may load only the two Swagger UI files it names, checked by their hashes.
    """

    def __init__(self, app: ASGIApp, page_policy: str) -> None:
        self.app = app
        policy = b"content-security-policy"
        self.page = [*NO_SNIFFING_OR_FRAMING, (policy, page_policy.encode())]
        self.api = SECURITY_HEADERS
        self.docs = [*NO_SNIFFING_OR_FRAMING, (policy, docs_policy().encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        extra = self.page if path == "/" else self.docs if path in DOC_ROUTES else self.api

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def page_policy(page: str) -> str:
    """The web page's Content-Security-Policy: its inline script and style by SHA-256, photo previews
    from ``blob:``, requests only to this service."""

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
        return " ".join(f"'sha256-{b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; img-src blob:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


def docs_page() -> str:
    """``/docs``: Swagger UI on the service's OpenAPI document, its files pinned and checked (SRI)."""
    css, js = "swagger-ui.css", "swagger-ui-bundle.js"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mushroom API</title>'
        f'<link rel="stylesheet" href="{SWAGGER_UI}/{css}" integrity="{SWAGGER_UI_FILES[css]}" '
        'crossorigin="anonymous"></head><body><div id="swagger-ui"></div>'
        f'<script src="{SWAGGER_UI}/{js}" integrity="{SWAGGER_UI_FILES[js]}" '
        'crossorigin="anonymous"></script>'
        f"<script>{DOCS_SCRIPT}</script></body></html>"
    )


def docs_policy() -> str:
    """The /docs page may run the pinned Swagger UI and its own one-line start script, nothing else."""
    start = b64encode(hashlib.sha256(DOCS_SCRIPT.encode()).digest()).decode()
    return (
        f"default-src 'none'; script-src {SWAGGER_UI}/swagger-ui-bundle.js 'sha256-{start}'; "
        f"style-src {SWAGGER_UI}/swagger-ui.css 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
