"""HTML pages the services serve to browsers, under a strict Content-Security-Policy: no script, no framing, no
forms, nothing fetched but images from the page's own origin, and only the page's own static <style> blocks,
allowed by their hashes (taken from the template's source, so nothing a request puts into a page can style it)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from fastapi.responses import HTMLResponse

_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style\s*>", re.S | re.I)
_TEMPLATE_SYNTAX = re.compile(r"\{[{%#]")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def style_hashes(template_source: str) -> tuple[str, ...]:
    """The CSP sources (`'sha256-…'`) of a template's <style> blocks, which must hold no template syntax."""
    found: list[str] = []
    for css in _STYLE.findall(template_source.replace("\r\n", "\n")):  # Jinja renders "\n" newlines
        if _TEMPLATE_SYNTAX.search(css):
            raise ValueError("a <style> block with template syntax cannot be allowed by its hash")
        digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        found.append(f"'sha256-{digest}'")
    return tuple(found)


def content_security_policy(styles: Iterable[str] = ()) -> str:
    style_src = " ".join(styles) or "'none'"
    return (
        f"default-src 'none'; style-src {style_src}; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def html_response(content: str, *, styles: Iterable[str] = (), status_code: int = 200) -> HTMLResponse:
    """A page with the policy and the headers every HTML answer carries; `styles` from `style_hashes`."""
    headers = {"Content-Security-Policy": content_security_policy(styles), **SECURITY_HEADERS}
    return HTMLResponse(content, status_code=status_code, headers=headers)
