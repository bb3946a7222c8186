"""Server-side SigV4 verification, recomputed with botocore over the request exactly as received."""

from __future__ import annotations

import datetime as dt
import hmac
import re
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from . import fakes
from .server import Request

SERVICE = "bedrock"
MAX_SKEW = dt.timedelta(minutes=5)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

# access key id -> (secret, required session token or None)
KEYS: dict[str, tuple[str, str | None]] = {
    fakes.AWS_ACCESS_KEY_ID: (fakes.AWS_SECRET_ACCESS_KEY, None),
    fakes.AWS_TEMP_ACCESS_KEY_ID: (fakes.AWS_TEMP_SECRET_ACCESS_KEY, fakes.AWS_SESSION_TOKEN),
}

MSG_BAD_TOKEN = "The security token included in the request is invalid."
MSG_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-fA-F]+)\s*$"
)


@dataclass
class AuthFailure(Exception):
    status: int
    code: str
    message: str


class _ExactHeadersSigV4(SigV4Auth):
    """SigV4Auth that signs exactly the headers the client listed (no blocklist, no implicit host)."""

    def __init__(self, credentials: Credentials, service: str, region: str, signed: list[str]) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        out = HTTPHeaders()
        for name, value in request.headers.items():
            if name.lower() in self._signed:
                out[name.lower()] = value
        return out


def _fmt(t: dt.datetime) -> str:
    return t.strftime(AMZ_DATE_FORMAT)


def verify(req: Request, region: str, now: dt.datetime | None = None) -> str:
    """Return the access key id of a correctly signed request, else raise AuthFailure as Bedrock would."""
    auth = req.headers.get("authorization")
    if not auth:
        raise AuthFailure(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    m = _AUTH_RE.match(auth.strip())
    if not m:
        raise AuthFailure(400, "IncompleteSignatureException",
                          f"Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
                          f"parameters. Authorization={auth.split(' ')[0]}")
    credential, signed_str, signature = m.groups()
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        region_part = parts[2] if len(parts) > 2 else ""
        raise AuthFailure(400, "IncompleteSignatureException",
                          f"Credential should be scoped to a valid region, not '{region_part}'. ")
    akid, scope_date, scope_region, scope_service, _ = parts
    signed = signed_str.lower().split(";")
    amz_date = req.headers.get("x-amz-date")
    if not amz_date:
        raise AuthFailure(400, "IncompleteSignatureException",
                          "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
                          f"Authorization={auth}")
    if "host" not in signed:
        raise AuthFailure(400, "IncompleteSignatureException",
                          "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    key = KEYS.get(akid)
    if key is None:
        raise AuthFailure(403, "UnrecognizedClientException", MSG_BAD_TOKEN)
    secret, required_token = key
    token = req.headers.get("x-amz-security-token")
    if required_token is not None:
        if token != required_token or "x-amz-security-token" not in signed:
            raise AuthFailure(403, "UnrecognizedClientException", MSG_BAD_TOKEN)
    elif token is not None:
        raise AuthFailure(403, "UnrecognizedClientException", MSG_BAD_TOKEN)
    try:
        when = dt.datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise AuthFailure(400, "IncompleteSignatureException",
                          f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See "
                          "http://en.wikipedia.org/wiki/ISO_8601") from None
    now = now or dt.datetime.now(dt.UTC)
    if when < now - MAX_SKEW:
        raise AuthFailure(403, "InvalidSignatureException",
                          f"Signature expired: {amz_date} is now earlier than {_fmt(now - MAX_SKEW)} "
                          f"({_fmt(now)} - 5 min.)")
    if when > now + MAX_SKEW:
        raise AuthFailure(403, "InvalidSignatureException",
                          f"Signature not yet current: {amz_date} is still later than {_fmt(now + MAX_SKEW)} "
                          f"({_fmt(now)} + 5 min.)")
    if scope_date != amz_date[:8]:
        raise AuthFailure(403, "InvalidSignatureException",
                          f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
                          f"HTTP: '{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.")
    if scope_region != region:
        raise AuthFailure(403, "InvalidSignatureException", "Credential should be scoped to a valid region. ")
    if scope_service != SERVICE:
        raise AuthFailure(403, "InvalidSignatureException",
                          f"Credential should be scoped to correct service: '{SERVICE}'. ")
    host = req.headers.get("host", "")
    aws_req = AWSRequest(method=req.method, url=f"http://{host}{req.raw_path}", data=req.body)
    for name, value in req.header_items:
        aws_req.headers[name] = value
    aws_req.context["timestamp"] = amz_date
    signer = _ExactHeadersSigV4(Credentials(akid, secret, token), SERVICE, region, signed)
    canonical = signer.canonical_request(aws_req)
    expected = signer.signature(signer.string_to_sign(aws_req, canonical), aws_req)
    if signer.signed_headers(signer.headers_to_sign(aws_req)) != ";".join(sorted(signed)):
        raise AuthFailure(403, "InvalidSignatureException", MSG_MISMATCH)  # a listed header is absent
    if not hmac.compare_digest(expected, signature.lower()):
        raise AuthFailure(403, "InvalidSignatureException", MSG_MISMATCH)
    return akid
