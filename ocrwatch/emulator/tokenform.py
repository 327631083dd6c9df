"""Read a token request's grant type and client credentials, however the client encoded them.

Accepted, as the official SDKs send them: an ``application/x-www-form-urlencoded`` body, a
``multipart/form-data`` body (old Python SDKs; parsed with the stdlib ``email`` parser) and
HTTP Basic client authentication (Go), whose id and secret are form-urlencoded inside the
Base64 as RFC 6749 requires. Basic credentials win over body fields. A body without a
content type is read as a form.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import email.parser
import email.policy
import urllib.parse
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TokenRequest:
    grant_type: str | None
    client_id: str | None
    client_secret: str | None = field(repr=False)


def _content_type(value: str | None) -> tuple[str, email.message.Message]:
    message = email.message.Message()
    message["Content-Type"] = value or "application/x-www-form-urlencoded"
    return message.get_content_type(), message


def _multipart_fields(content_type: str, body: bytes) -> dict[str, str]:
    envelope = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(envelope)
    fields: dict[str, str] = {}
    if not parsed.is_multipart():
        return fields
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields.setdefault(name, payload.decode("utf-8", errors="replace"))
    return fields


def _form_fields(body: bytes) -> dict[str, str]:
    pairs = urllib.parse.parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, separator, secret = decoded.partition(":")
    if not separator:
        return None
    return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)


def parse_token_request(
    body: bytes, *, content_type: str | None, authorization: str | None
) -> TokenRequest:
    kind, _ = _content_type(content_type)
    if kind == "multipart/form-data":
        fields = _multipart_fields(content_type or "", body)
    else:
        fields = _form_fields(body)
    basic = _basic_credentials(authorization)
    client_id, client_secret = basic or (fields.get("client_id"), fields.get("client_secret"))
    return TokenRequest(
        grant_type=fields.get("grant_type"), client_id=client_id, client_secret=client_secret
    )
