"""The server's Ed25519 signing keys: what signs the audit log's checkpoints.

The keys live where the server's HS256 key lives, never in the database: a key file in the
data folder (``signing-keys.json``, mode 0600, created once), or ``SIGNOFF_SIGNING_KEY`` (a
32-byte Ed25519 seed, base64url) for replicas that run on several machines. Someone who can
write to the database but not read the server's files or environment cannot sign, so a
history they rewrote carries no valid signature.

The file is a JSON Web Key Set (RFC 7517, OKP keys of RFC 8037): the first key is the one
that signs and holds its private part ``d``; older keys stay, public part only, so that what
they signed still verifies after a rotation (:func:`rotate`). Each key's id is its RFC 7638
thumbprint. :meth:`Keyring.public_jwks` is what the server publishes.

Verifying trusts only the keys of this keyring and the public keys the operator lists in
the config (``[audit] trusted_keys``); a key found in a checkpoint itself is never trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from signoff.errors import ConfigError

__all__ = ["KEY_FILE", "KeySet", "Keyring", "PublicKey", "public_key", "rotate"]

KEY_FILE = "signing-keys.json"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{what} is not base64url") from exc


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def thumbprint(x: str) -> str:
    """RFC 7638: SHA-256 over the key's required members in lexicographic order."""
    members = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return _b64(hashlib.sha256(members.encode()).digest())


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A key that verifies: its id and its raw public bytes."""

    kid: str
    key: Ed25519PublicKey

    @property
    def x(self) -> str:
        return _b64(_raw_public(self.key))

    def jwk(self) -> dict[str, str]:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self.x,
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            self.key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class KeySet:
    """Public keys only: what verifies away from the server (an exported checkpoint file's
    keys, keys given on the command line)."""

    def __init__(self, keys: Iterable[PublicKey]) -> None:
        self._keys = {key.kid: key for key in keys}

    def trusted(self, kid: str) -> PublicKey | None:
        return self._keys.get(kid)

    @property
    def keys(self) -> list[PublicKey]:
        return list(self._keys.values())


def public_key(x: str) -> PublicKey:
    """A public key from its base64url raw form (what ``[audit] trusted_keys`` lists)."""
    raw = _unb64(x.strip(), "a trusted key")
    if len(raw) != 32:
        raise ConfigError(f"a trusted Ed25519 key is 32 bytes, not {len(raw)}: {x!r}")
    return PublicKey(thumbprint(_b64(raw)), Ed25519PublicKey.from_public_bytes(raw))


class Keyring:
    """The key that signs now, and every key whose signatures verify."""

    def __init__(self, signer: Ed25519PrivateKey, others: Iterable[PublicKey] = ()) -> None:
        self._signer = signer
        x = _b64(_raw_public(signer.public_key()))
        self.current = PublicKey(thumbprint(x), signer.public_key())
        self._trusted: dict[str, PublicKey] = {self.current.kid: self.current}
        for key in others:
            self._trusted.setdefault(key.kid, key)

    @classmethod
    def ephemeral(cls) -> Keyring:
        """A key that lives as long as the process: for stores that do too (memory://)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: str, others: Iterable[PublicKey] = ()) -> Keyring:
        raw = _unb64(seed.strip(), "SIGNOFF_SIGNING_KEY")
        if len(raw) != 32:
            raise ConfigError(f"SIGNOFF_SIGNING_KEY must be a 32-byte seed, not {len(raw)} bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(raw), others)

    @classmethod
    def load(
        cls, data_dir: Path, *, seed: str | None = None, trusted: Iterable[str] = ()
    ) -> Keyring:
        """The keyring of ``data_dir`` (created on first use), or the key in ``seed``; with
        the operator's ``trusted`` public keys."""
        extra = [public_key(x) for x in trusted]
        if seed:
            return cls.from_seed(seed, extra)
        path = data_dir / KEY_FILE
        try:
            return _read(path, extra)
        except FileNotFoundError:
            pass
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        signer = Ed25519PrivateKey.generate()
        try:
            _write_new(path, _jwks(signer, []))
        except FileExistsError:
            return _read(path, extra)  # another process created it first: use theirs
        return cls(signer, extra)

    def trusted(self, kid: str) -> PublicKey | None:
        return self._trusted.get(kid)

    @property
    def keys(self) -> list[PublicKey]:
        return list(self._trusted.values())

    def sign(self, message: bytes) -> bytes:
        return self._signer.sign(message)

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """What the server publishes: every key that verifies, public parts only."""
        return {"keys": [key.jwk() for key in self._trusted.values()]}


def rotate(data_dir: Path) -> PublicKey:
    """Make a new signing key current in ``data_dir``'s keyring; the old ones keep only their
    public part, so that what they signed still verifies. Returns the new key."""
    path = data_dir / KEY_FILE
    try:
        old = _read(path, [])
    except FileNotFoundError:
        old = None
    signer = Ed25519PrivateKey.generate()
    document = _jwks(signer, [] if old is None else old.keys)
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_new(tmp, document)
    os.replace(tmp, path)
    return Keyring(signer).current


def _jwks(signer: Ed25519PrivateKey, retired: Iterable[PublicKey]) -> str:
    x = _b64(_raw_public(signer.public_key()))
    d = _b64(signer.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    current = {"kty": "OKP", "crv": "Ed25519", "x": x, "d": d, "kid": thumbprint(x)}
    keys = [current, *(key.jwk() for key in retired if key.x != x)]
    return json.dumps({"keys": keys}, indent=2) + "\n"


def _write_new(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _read(path: Path, extra: list[PublicKey]) -> Keyring:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        entries = document["keys"]
        current, *older = entries
        seed = _unb64(current["d"], f"{path}: the current key")
        signer = Ed25519PrivateKey.from_private_bytes(seed)
        others = [public_key(entry["x"]) for entry in older]
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: not a signoff keyring ({exc}); restore it from a backup"
        ) from exc
    return Keyring(signer, [*others, *extra])
