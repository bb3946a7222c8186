"""Google OAuth token endpoint for the Vertex emulator: a generated service account and jwt-bearer grants."""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt
from google.auth import exceptions as gexc

from . import fakes
from .server import Request, Response, json_response

TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
MAX_ASSERTION_LIFETIME = 3600
CLOCK_SKEW = 60


def _grant_error(error: str, description: str) -> Response:
    return json_response(400, {"error": error, "error_description": description})


class TokenIssuer:
    """Owns the service account's key pair, issues access tokens and checks bearer tokens."""

    def __init__(self, token_ttl: int) -> None:
        self.token_ttl = token_ttl
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.private_key_id = secrets.token_hex(20)
        self._tokens: dict[str, float] = {}  # access token -> expiry (epoch seconds)
        self._grants = 0
        self._lock = threading.Lock()

    def write_service_account(self, state_dir: Path, token_uri: str) -> Path:
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        info = {
            "type": "service_account",
            "project_id": fakes.VERTEX_PROJECT,
            "private_key_id": self.private_key_id,
            "private_key": pem,
            "client_email": fakes.VERTEX_CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
            + fakes.VERTEX_CLIENT_EMAIL.replace("@", "%40"),
            "universe_domain": "googleapis.com",
        }
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / "vertex-service-account.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f, indent=2)
        return path

    @property
    def grants(self) -> int:
        with self._lock:
            return self._grants

    def reset(self) -> None:
        with self._lock:
            self._grants = 0

    def token_endpoint(self, req: Request) -> Response:
        if req.method != "POST":
            return json_response(405, {"error": "invalid_request", "error_description": "Method not allowed"})
        form = parse_qs(req.body.decode("utf-8", errors="replace"), keep_blank_values=True)
        grant_type = (form.get("grant_type") or [""])[0]
        if grant_type != JWT_GRANT:
            return _grant_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        assertion = (form.get("assertion") or [""])[0]
        bad_signature = _grant_error("invalid_grant", "Invalid JWT Signature.")
        try:
            header = jwt.decode_header(assertion)
            claims: dict[str, Any] = jwt.decode(assertion, verify=False)
            signed_part, _, sig = assertion.encode().rpartition(b".")
            signature_ok = crypt.RSAVerifier.from_string(self.public_pem).verify(
                signed_part, base64.urlsafe_b64decode(sig + b"=" * (-len(sig) % 4))
            )
        except (ValueError, TypeError, gexc.GoogleAuthError):
            return bad_signature
        if not signature_ok or header.get("alg") != "RS256":
            return bad_signature
        if header.get("kid", self.private_key_id) != self.private_key_id:
            return bad_signature
        if claims.get("aud") != TOKEN_AUDIENCE:
            return _grant_error("invalid_grant", "Invalid JWT audience.")
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if (not isinstance(iat, int | float) or not isinstance(exp, int | float) or iat > now + CLOCK_SKEW
                or exp < now - CLOCK_SKEW or exp - iat > MAX_ASSERTION_LIFETIME):
            return _grant_error(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                "Check your iat and exp values in the JWT claim.",
            )
        if claims.get("iss") != fakes.VERTEX_CLIENT_EMAIL:
            return _grant_error("invalid_grant", "Invalid email or User ID")
        if CLOUD_PLATFORM not in str(claims.get("scope", "")).split():
            return _grant_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        token = "ya29.c.emu-" + secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = time.time() + self.token_ttl
            self._grants += 1
        return json_response(
            200, {"access_token": token, "expires_in": self.token_ttl, "token_type": "Bearer"}
        )

    def check(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and time.time() < expiry
