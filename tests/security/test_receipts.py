"""Receipts under attack: whoever holds only an agent's process (or a receipt it saw) cannot
make a receipt verify for a call nobody approved."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from signoff.canonical import digest
from signoff.errors import InvalidReceipt, ReceiptExpired, ReceiptMismatch, SignoffError
from signoff.keys import Keyring
from signoff.receipts import TYPE, mint, verify

KEYS = Keyring.ephemeral()
JWKS = KEYS.public_jwks()
ARGS = {"order_id": "ORD-1", "amount": 250}
NOW = 1_800_000_000


def good(**overrides: Any) -> str:
    claims: dict[str, Any] = {
        "rid": "apr_1",
        "tool": "issue_refund",
        "digest": digest(ARGS),
        "by": ["alice"],
        "iat": NOW,
        "exp": NOW + 3600,
    }
    claims.update(overrides)
    return mint(KEYS, **claims)


def b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    h, p, s = token.split(".")

    def pad(text: str) -> str:
        return text + "=" * (-len(text) % 4)

    return (
        json.loads(base64.urlsafe_b64decode(pad(h))),
        json.loads(base64.urlsafe_b64decode(pad(p))),
        s,
    )


def test_a_good_receipt_verifies() -> None:
    receipt = verify(good(), JWKS, tool="issue_refund", args=ARGS, now=NOW + 1)
    assert receipt.rid == "apr_1"


def test_forged_with_another_key_under_the_servers_kid() -> None:
    header, claims, _ = parts(good())
    forger = Ed25519PrivateKey.generate()
    signing_input = f"{b64(header)}.{b64(claims)}"
    forged = f"{signing_input}.{b64(forger.sign(signing_input.encode()))}"
    with pytest.raises(InvalidReceipt, match="signature does not verify"):
        verify(forged, JWKS, now=NOW)


def test_forged_with_a_key_of_its_own_is_an_unknown_kid() -> None:
    other = Keyring.ephemeral()
    token = mint(
        other, rid="apr_1", tool="issue_refund", digest=digest(ARGS), by=["a"], iat=NOW, exp=NOW + 1
    )
    with pytest.raises(InvalidReceipt, match="not one of the trusted keys"):
        verify(token, JWKS, now=NOW)
    # nor does a key id the verifier was handed along with the receipt help
    with pytest.raises(InvalidReceipt, match="not one of the trusted keys"):
        verify(token, {"keys": []}, now=NOW)


@pytest.mark.parametrize(
    "change", [{"tool": "delete_database"}, {"rid": "apr_2"}, {"exp": NOW + 10**9}, {"by": ["x"]}]
)
def test_an_altered_payload_does_not_verify(change: dict[str, Any]) -> None:
    header, claims, signature = parts(good())
    altered = f"{b64(header)}.{b64({**claims, **change})}.{signature}"
    with pytest.raises(InvalidReceipt, match="signature does not verify"):
        verify(altered, JWKS, now=NOW)


def test_swapped_args_and_a_wrong_tool_are_refused() -> None:
    token = good()
    with pytest.raises(ReceiptMismatch, match="not the ones that were approved"):
        verify(token, JWKS, tool="issue_refund", args={**ARGS, "amount": 99999}, now=NOW)
    with pytest.raises(ReceiptMismatch, match="approves 'issue_refund', not 'drop_table'"):
        verify(token, JWKS, tool="drop_table", now=NOW)
    # a receipt of another approval, swapped in for this call
    other = good(rid="apr_9", digest=digest({"order_id": "ORD-2", "amount": 1}))
    with pytest.raises(ReceiptMismatch):
        verify(other, JWKS, tool="issue_refund", args=ARGS, now=NOW)


def test_alg_none_is_refused() -> None:
    _, claims, _ = parts(good())
    header = {"alg": "none", "kid": KEYS.current.kid, "typ": TYPE}
    for token in (f"{b64(header)}.{b64(claims)}.", f"{b64(header)}.{b64(claims)}.AAAA"):
        with pytest.raises(InvalidReceipt, match="EdDSA, not 'none'"):
            verify(token, JWKS, now=NOW)


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    """The classic confusion: the public key (known to all) used as an HMAC secret."""
    _, claims, _ = parts(good())
    public = KEYS.current
    for secret in (public.x.encode(), json.dumps(public.jwk()).encode()):
        # signed by hand: PyJWT itself refuses a key that looks like a JWK as an HMAC secret
        header = {"alg": "HS256", "kid": public.kid, "typ": TYPE}
        signing_input = f"{b64(header)}.{b64(claims)}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{b64(mac)}"
        with pytest.raises(InvalidReceipt, match="EdDSA, not 'HS256'"):
            verify(token, JWKS, now=NOW)


def test_an_expired_receipt_is_refused() -> None:
    token = good(iat=NOW - 7200, exp=NOW - 3600)
    with pytest.raises(ReceiptExpired, match="expired"):
        verify(token, JWKS, now=NOW)
    # at the very second of exp it is already expired
    with pytest.raises(ReceiptExpired):
        verify(good(), JWKS, now=NOW + 3600)


def test_another_jwt_signed_by_the_same_key_is_not_a_receipt() -> None:
    """An EdDSA token of another kind (no receipt ``typ``) is never taken for a receipt."""
    _, claims, _ = parts(good())
    header = {"alg": "EdDSA", "kid": KEYS.current.kid}
    signing_input = f"{b64(header)}.{b64(claims)}"
    token = f"{signing_input}.{b64(KEYS.sign(signing_input.encode()))}"
    with pytest.raises(InvalidReceipt, match="not a signoff receipt"):
        verify(token, JWKS, now=NOW)


def test_a_jwks_with_other_kinds_of_keys_widens_nothing() -> None:
    hostile = {
        "keys": [
            {"kty": "oct", "k": b64(b"secret"), "kid": KEYS.current.kid},
            {"kty": "OKP", "crv": "Ed25519", "x": "not base64!", "kid": "x"},
            "junk",
            *JWKS["keys"],
        ]
    }
    assert verify(good(), hostile, now=NOW).kid == KEYS.current.kid
    with pytest.raises(InvalidReceipt):
        verify(good(), {"keys": hostile["keys"][:3]}, now=NOW)
    for bad_keys in ({"keys": "nope"}, "not json"):
        with pytest.raises(InvalidReceipt):
            verify(good(), bad_keys, now=NOW)


@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b64(b) + "." + b64(b) + "."))
def test_garbage_is_only_ever_an_invalid_receipt(token: str) -> None:
    with pytest.raises(InvalidReceipt):
        verify(token, JWKS, now=NOW)


def test_wrongly_typed_claims_are_refused() -> None:
    header = {"alg": "EdDSA", "kid": KEYS.current.kid, "typ": TYPE}
    claims_of_good = parts(good())[1]
    for claims in ({"rid": "a"}, {**claims_of_good, "by": "alice"}, {**claims_of_good, "exp": "1"}):
        signing_input = f"{b64(header)}.{b64(claims)}"
        token = f"{signing_input}.{b64(KEYS.sign(signing_input.encode()))}"
        with pytest.raises(InvalidReceipt) as caught:
            verify(token, JWKS, now=NOW)
        assert isinstance(caught.value, SignoffError)
