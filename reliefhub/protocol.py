"""The HTTP/1.1 protocol `reliefhub dev` and `reliefhub serve` run uvicorn with: uvicorn's httptools one, whose
refusal of a request that is not valid HTTP is a problem+json 400 saying what to do, not a plain-text line.

The commonest such request in this project is a URL with Chinese in it sent as raw UTF-8 (`curl
"…/v1/items?q=口罩"`: curl sends what it is given). A request-target is ASCII (RFC 9112 §3.2, RFC 3986 §2.1),
so neither of uvicorn's parsers accepts it, and neither can be configured to: llhttp (httptools) fails it as
"Invalid char in url" whatever leniency flags are set, and h11 matches the target against VCHAR only. Rewriting
the bytes in front of the parser would mean a second, hand-made HTTP parser before the real one, where request
smuggling lives; so the request is refused, and the answer tells the client to percent-encode."""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.errors import PROBLEM_BASE, PROBLEM_JSON

# For uvicorn's `http=` (a string, so that worker processes import it themselves).
HTTP_PROTOCOL = "reliefhub.protocol:ProblemHttpToolsProtocol"
MALFORMED_DETAIL = (
    "The request is not valid HTTP/1.1. Most often its URL holds characters outside ASCII, such as Chinese in a "
    "query: percent-encode them (?q=%E5%8F%A3%E7%BD%A9 for ?q=口罩), e.g. with curl -G --data-urlencode 'q=口罩'."
)


def malformed_request_body() -> bytes:
    problem = {
        "type": PROBLEM_BASE + "malformed-request",
        "title": "Malformed HTTP request",
        "status": 400,
        "detail": MALFORMED_DETAIL,
    }
    return json.dumps(problem, ensure_ascii=False).encode()


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        """What uvicorn answers a request its parser refuses, then closes the connection (as uvicorn does)."""
        body = malformed_request_body()
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head += [
            b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"x-content-type-options: nosniff\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
