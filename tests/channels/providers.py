"""Local stand-ins for Twilio's and Ably's REST APIs, speaking their wire formats, so that
the real ``twilio`` and ``ably`` packages talk to them over loopback HTTP(S).

- :class:`FakeTwilio`: ``POST /2010-04-01/Accounts/{sid}/Messages.json`` (HTTP Basic with
  the account SID and auth token, a form body, a 201 message resource), and
  :func:`twilio_inbound`, the form and ``X-Twilio-Signature`` Twilio posts to a messaging
  webhook when someone texts the number (signed with the real package's validator).
- :class:`FakeAbly`: ``POST /channels/{channel}/messages`` over TLS (the ably package never
  sends a key over plain http), with a key (HTTP Basic) or an Ably JWT (``Bearer``); it
  stamps what Ably's servers stamp (``id``, ``clientId`` and ``extras.userClaim`` from the
  token, ``connectionId``, ``timestamp``), dropping any ``userClaim`` a client wrote, and
  forwards each new message to a webhook as Ably's batched, signed webhook integration does.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-auth-token-for-tests"
ABLY_KEY = "appId1.keyId1:ably-key-secret-for-the-channel-tests"


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    user, _, password = base64.b64decode(value).decode().partition(":")
    return user, password


# -- Twilio ------------------------------------------------------------------------------


@dataclass
class FakeTwilio:
    account_sid: str = TWILIO_SID
    auth_token: str = TWILIO_TOKEN
    sent: list[dict[str, str]] = field(default_factory=list)
    #: numbers Twilio refuses to text (400, error 21211)
    invalid: set[str] = field(default_factory=set)
    #: answer every create with this status (a 503 outage, a 429)
    status: int | None = None

    def app(self) -> Starlette:
        path = "/2010-04-01/Accounts/{sid}/Messages.json"
        return Starlette(routes=[Route(path, self.create, methods=["POST"])])

    async def create(self, request: Request) -> Response:
        if _basic(request) != (self.account_sid, self.auth_token):
            return _twilio_error(401, 20003, "Authenticate")
        if request.path_params["sid"] != self.account_sid:
            return _twilio_error(404, 20404, "The requested resource was not found")
        form = {k: str(v) for k, v in (await request.form()).items()}
        if self.status is not None:
            return _twilio_error(self.status, 20500, "Internal Server Error")
        if form.get("To") in self.invalid:
            return _twilio_error(400, 21211, f"The 'To' number {form['To']} is not valid.")
        sid = "SM" + secrets.token_hex(16)
        self.sent.append({**form, "Sid": sid})
        now = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"
        return JSONResponse(
            {
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": form.get("Body", ""),
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": None,
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "queued",
                "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
                "to": form.get("To"),
                "uri": uri,
            },
            status_code=201,
        )


def _twilio_error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def twilio_inbound(
    url: str,
    *,
    from_: str,
    body: str,
    to: str = "+15550001111",
    sid: str | None = None,
    token: str = TWILIO_TOKEN,
    account_sid: str = TWILIO_SID,
) -> tuple[dict[str, str], dict[str, str]]:
    """The form Twilio posts for an incoming SMS, and its headers (signed as Twilio signs:
    HMAC-SHA1 with the auth token over the URL and the sorted fields)."""
    sid = sid or "SM" + secrets.token_hex(16)
    form = {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "US",
        "To": to,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(token).compute_signature(url, form)
    return form, {"X-Twilio-Signature": signature, "I-Twilio-Idempotency-Token": sid}


# -- Ably --------------------------------------------------------------------------------


def ably_token(client_id: str, role: str | None, key: str = ABLY_KEY, ttl: int = 3600) -> str:
    """An Ably JWT as the seed guides' auth server issues: HS256 with the key's secret,
    ``kid`` the key's name, the role in an ``ably.channel.*`` claim."""
    name, _, secret = key.partition(":")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iat": now,
        "exp": now + ttl,
        "x-ably-capability": json.dumps({"*": ["publish", "subscribe"]}),
        "x-ably-clientId": client_id,
    }
    if role is not None:
        claims["ably.channel.*"] = role
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": name})


def ably_signature(body: bytes, key: str = ABLY_KEY) -> str:
    secret = key.partition(":")[2].encode()
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def ably_batch(channel: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Ably's batched, enveloped webhook body for ``channel.message`` events."""
    return {
        "items": [
            {
                "webhookId": "ABcDEf",
                "source": "channel.message",
                "serial": f"a7bcdEFghIjklm123456789:{i}",
                "timestamp": int(time.time() * 1000),
                "name": "channel.message",
                "data": {"channelId": channel, "site": "eu-west-1-A", "messages": [message]},
            }
            for i, message in enumerate(messages)
        ]
    }


@dataclass
class FakeAbly:
    key: str = ABLY_KEY
    #: where to post the signed webhook batches (None: nowhere)
    webhook_url: str | None = None
    published: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    webhook_answers: list[httpx.Response] = field(default_factory=list)

    def app(self) -> Starlette:
        path = "/channels/{channel}/messages"
        return Starlette(routes=[Route(path, self.publish, methods=["POST"])])

    def _claims(self, request: Request) -> dict[str, Any] | None:
        """The publisher's verified claims (a key: any client; a JWT: its own), or None."""
        name, _, secret = self.key.partition(":")
        if _basic(request) == (name, secret):
            return {}
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            token = base64.b64decode(value).decode()
            if jwt.get_unverified_header(token).get("kid") != name:
                return None
            claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"])
        except (ValueError, jwt.PyJWTError):
            return None
        return claims

    @staticmethod
    def _user_claim(claims: dict[str, Any], channel: str) -> Any:
        """The most specific ``ably.channel.<pattern>`` claim matching ``channel``."""
        best: tuple[int, Any] | None = None
        for claim, value in claims.items():
            if not claim.startswith("ably.channel."):
                continue
            pattern = claim[len("ably.channel.") :]
            matches = pattern in ("*", channel) or (
                pattern.endswith(":*") and channel.startswith(pattern[:-1])
            )
            if matches and (best is None or len(pattern) > best[0]):
                best = (len(pattern), value)
        return None if best is None else best[1]

    async def publish(self, request: Request) -> Response:
        claims = self._claims(request)
        if claims is None:
            return JSONResponse(
                {"error": {"message": "Invalid credentials", "code": 40101, "statusCode": 401}},
                status_code=401,
            )
        channel = request.path_params["channel"]
        body = json.loads(await request.body())
        fresh = []
        for message in body if isinstance(body, list) else [body]:
            stored = dict(message)
            stored.setdefault("id", secrets.token_urlsafe(10) + ":0")
            if any(m["id"] == stored["id"] for m in self.published.get(channel, [])):
                continue  # idempotent publishing: the same id is one message
            extras = dict(stored.pop("extras", None) or {})
            extras.pop("userClaim", None)  # only Ably writes it, from the token
            if claims:
                stored["clientId"] = claims.get("x-ably-clientId")
                claim = self._user_claim(claims, channel)
                if claim is not None:
                    extras["userClaim"] = claim
            if extras:
                stored["extras"] = extras
            stored["connectionId"] = "ABcDefgHIj"
            stored["timestamp"] = int(time.time() * 1000)
            self.published.setdefault(channel, []).append(stored)
            fresh.append(stored)
        if fresh and self.webhook_url is not None:
            raw = json.dumps(ably_batch(channel, fresh)).encode()
            headers = {
                "content-type": "application/json",
                "x-ably-version": "1.2",
                "x-ably-key": self.key.partition(":")[0],
                "x-ably-signature": ably_signature(raw, self.key),
            }
            async with httpx.AsyncClient() as http:
                answer = await http.post(self.webhook_url, content=raw, headers=headers)
                self.webhook_answers.append(answer)
        ids = [m["id"] for m in fresh]
        return JSONResponse(
            {"channel": channel, "messageId": ids[0] if ids else None, "serials": ids},
            status_code=201,
        )


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, the certificate being its own authority
    (a test trusts it through ``SSL_CERT_FILE``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
