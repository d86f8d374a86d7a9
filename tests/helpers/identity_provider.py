"""A real local identity provider for tests: a JWKS endpoint over HTTP on 127.0.0.1 (a thread, so blocking and
async callers alike can reach it) serving the public halves of keys generated here, and the signing of access
tokens with their private halves."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class SigningKey:
    kid: str
    algorithm: str  # RS256 or ES256
    private: PrivateKey

    @classmethod
    def generate(cls, algorithm: str = "RS256", kid: str | None = None) -> SigningKey:
        private: PrivateKey
        if algorithm == "RS256":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(algorithm)
        return cls(kid or f"{algorithm.lower()}-{uuid.uuid4().hex[:8]}", algorithm, private)

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}


@dataclass
class IdentityProvider:
    """Keys published at `jwks_url`; `fetches` counts the key set's downloads."""

    issuer: str = ""
    audience: str = "reliefhub-api"
    published: list[SigningKey] = field(default_factory=list)
    fetches: int = 0
    jwks_url: str = ""

    def publish(self, *keys: SigningKey) -> None:
        self.published = list(keys)

    def key_set(self) -> dict[str, Any]:
        self.fetches += 1
        return {"keys": [k.jwk() for k in self.published]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "f3b1c2d4-0000-4000-8000-000000000001",
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "org": "org-idp",
            "roles": ["frontline"],
        }
        return {k: v for k, v in {**base, **overrides}.items() if v is not None}

    def token(self, key: SigningKey | None = None, *, kid: str | None = None, **claims: Any) -> str:
        key = key or self.published[0]
        headers = {"kid": kid or key.kid}
        return jwt.encode(self.claims(**claims), key.private, algorithm=key.algorithm, headers=headers)


@contextmanager
def serve_identity_provider(*keys: SigningKey) -> Iterator[IdentityProvider]:
    provider = IdentityProvider(published=list(keys) or [SigningKey.generate()])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/realms/reliefhub/protocol/openid-connect/certs":
                self.send_error(404)
                return
            body = json.dumps(provider.key_set()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    provider.issuer = f"{base}/realms/reliefhub"
    provider.jwks_url = f"{provider.issuer}/protocol/openid-connect/certs"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
