"""The kit's HTML answers: the policy and headers, and styles allowed by the hash of the template's source."""

from __future__ import annotations

import base64
import hashlib

import pytest

from shared.html import content_security_policy, html_response, style_hashes


def test_static_style_blocks_are_allowed_by_their_hash() -> None:
    css = "\n  body { margin: 0; }\n"
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    source = f'<html><head><style>{css}</style><style media="print">p {{ }}</style></head></html>'
    hashes = style_hashes(source)
    assert hashes[0] == f"'sha256-{digest}'" and len(hashes) == 2
    assert style_hashes(source.replace("\n", "\r\n")) == hashes  # the page is rendered with "\n" newlines
    assert style_hashes("<p>no style</p>") == ()


@pytest.mark.parametrize("block", ["{{ colour }}", "{% if x %}b{% endif %}", "{# note #}"])
def test_a_style_block_with_template_syntax_is_refused(block: str) -> None:
    with pytest.raises(ValueError, match="template syntax"):
        style_hashes(f"<style>p {{ color: red }} {block}</style>")


def test_a_page_carries_the_policy_and_the_headers() -> None:
    response = html_response("<p>hi</p>", styles=["'sha256-abc'"])
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; style-src 'sha256-abc'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY" and response.headers["referrer-policy"] == "no-referrer"
    assert "style-src 'none'" in content_security_policy()
