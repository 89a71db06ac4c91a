"""The audit log's files, for safe keeping away from the server: the exported log (JSON
lines, ``signoff audit export``) and the exported checkpoints with the public keys that
verify them (``signoff audit checkpoint export``). Reading either one gives a clear error
for anything that is not such a file."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from signoff.audit import LOG_NAME, AuditEvent, Checkpoint
from signoff.errors import ConfigError
from signoff.keys import KeySet, public_key

__all__ = ["checkpoint_document", "read_checkpoints", "read_log"]

FORMAT = "signoff-checkpoints-v1"


def checkpoint_document(
    checkpoints: Iterable[Checkpoint], jwks: dict[str, Any], *, source: str, at: str
) -> dict[str, Any]:
    """What ``signoff audit checkpoint export`` writes: every checkpoint, and the public
    keys (JWKS) they verify with, as the server published them when they were exported."""
    return {
        "format": FORMAT,
        "log": LOG_NAME,
        "source": source,
        "exported_at": at,
        "keys": jwks,
        "checkpoints": [c.to_dict() for c in checkpoints],
    }


def read_checkpoints(path: Path) -> tuple[list[Checkpoint], KeySet]:
    """The checkpoints of an exported checkpoint file, and the keys it carries."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a checkpoint file from 'signoff audit checkpoint export'")
    try:
        checkpoints = [Checkpoint.from_dict(item) for item in document["checkpoints"]]
        keys = [public_key(str(jwk["x"])) for jwk in document["keys"]["keys"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: a checkpoint or key is malformed ({exc})") from exc
    if not checkpoints:
        raise ConfigError(f"{path}: holds no checkpoint")
    return checkpoints, KeySet(keys)


def read_log(path: Path) -> list[AuditEvent]:
    """The events of an exported log (one JSON object per line)."""
    events = []
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    if not isinstance(item, dict):
                        raise TypeError("not an object")
                    events.append(AuditEvent.from_dict(item))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ConfigError(f"{path}, line {number}: not an audit event ({exc})") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    return events
