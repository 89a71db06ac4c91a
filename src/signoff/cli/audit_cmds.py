"""The audit log's commands: verify, export, checkpoint export, rotate-key."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from signoff.audit import Checkpoint
from signoff.audit_check import Verification, verify_export
from signoff.audit_files import checkpoint_document, read_checkpoints, read_log
from signoff.cli._common import (
    DbOption,
    JsonOption,
    TokenOption,
    UrlOption,
    _print_json,
    _run,
    _settings,
    _with_client,
    audit_app,
    checkpoint_app,
    console,
)
from signoff.connect import data_dir
from signoff.errors import ConfigError
from signoff.keys import KeySet, public_key, rotate
from signoff.safe_text import printable, shown

if TYPE_CHECKING:
    from signoff.client import Client


@audit_app.command("verify")
def audit_verify(
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            dir_okay=False,
            help="A file from 'signoff audit checkpoint export': the log must still hold what "
            "its checkpoints signed (finds a cut-off tail). The log is also checked here, "
            "with the file's keys, not only by the server.",
        ),
    ] = None,
    log: Annotated[
        Path | None,
        typer.Option(
            "--log",
            dir_okay=False,
            help="Verify a log exported with 'signoff audit export' instead of the server's "
            "(offline; needs --against).",
        ),
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="Also trust this public key (base64url Ed25519)."),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """Check the audit log: its chain, its signed checkpoints, and every request against
    its events."""
    if log is not None:
        if against is None:
            raise ConfigError("--log needs --against: the exported checkpoints to verify it with")
        checkpoints, keys = _checkpoint_file(against, key or [])
        result = verify_export(read_log(log), checkpoints, keys)
    elif against is not None:
        checkpoints, keys = _checkpoint_file(against, key or [])
        result = _run(_with_client(url, token, lambda c: _both(c, checkpoints, keys)))
    else:
        result = _run(_with_client(url, token, lambda c: c.verify_audit()))
    _report(result, json_out)


def _checkpoint_file(path: Path, extra: list[str]) -> tuple[list[Checkpoint], KeySet]:
    checkpoints, keys = read_checkpoints(path)
    return checkpoints, KeySet([*keys.keys, *(public_key(x) for x in extra)])


async def _both(client: Client, checkpoints: list[Checkpoint], keys: KeySet) -> Verification:
    """The server's own check against the newest exported checkpoint, and this machine's
    check of the log the server returns: a server that lies about its log is caught too."""
    newest = max(checkpoints, key=lambda c: c.size)
    on_server = await client.verify_audit(against=newest)
    events, after = [], 0
    while True:
        page = await client.audit_events(after=after, limit=1000)
        events.extend(page.events)
        if page.next_after is None:
            break
        after = page.next_after
    here = verify_export(events, checkpoints, keys)
    return on_server if here.ok else here


def _report(result: Verification, json_out: bool) -> None:
    if json_out:
        _print_json(result.to_dict())
        if not result.ok:
            raise typer.Exit(1)
        return
    if result.ok:
        sealed = f"{result.sealed} sealed"
        if result.checkpoint is not None:
            sealed += f" under a checkpoint signed by {result.checkpoint['kid']}"
        console.print(
            shown(
                f"The audit log is intact: {result.events} events ({sealed}, "
                f"{result.unsealed} not sealed yet), head {result.head}"
            )
        )
        return
    if result.first_bad is not None:
        bad = result.first_bad
        where = f"seq {bad['seq']}" if "seq" in bad else f"position {bad.get('position')}"
        message = f"the audit log is broken at {where}: {bad.get('reason')}"
    else:
        first = result.mismatches[0] if result.mismatches else {}
        message = (
            f"{result.mismatched} request(s) disagree with their audited events, e.g. "
            f"{first.get('request_id')}: the row says {first.get('row')!r}, the events "
            f"{first.get('events')!r}"
        )
    print(printable(f"signoff: {message}"), file=sys.stderr)
    raise typer.Exit(1)


@checkpoint_app.command("export")
def checkpoint_export(
    out: Annotated[
        Path | None,
        typer.Option("--out", dir_okay=False, help="Write here (default: standard output)."),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Write every signed checkpoint, with the public keys that verify them, for safe
    keeping away from the server (then: signoff audit verify --against FILE)."""

    async def fetch(client: Client) -> dict[str, Any]:
        checkpoints = await client.checkpoints()
        if not checkpoints:
            raise ConfigError("the server has signed no checkpoint yet: try again in a moment")
        jwks = await client.audit_keys()
        at = datetime.now(UTC).isoformat(timespec="seconds")
        return checkpoint_document(checkpoints, jwks, source=client.url, at=at)

    document = _run(_with_client(url, token, fetch))
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from exc
    newest = document["checkpoints"][-1]
    console.print(
        shown(
            f"Wrote {len(document['checkpoints'])} checkpoints to {out} (newest: size "
            f"{newest['size']}, head {newest['head']})"
        )
    )


@audit_app.command("rotate-key")
def rotate_key(db: DbOption = None) -> None:
    """Make a new key sign the audit log's checkpoints (in the store's data folder); the
    old one keeps verifying what it signed. Restart the servers that use the folder."""
    settings = _settings()
    if settings.signing_key:
        raise ConfigError(
            "SIGNOFF_SIGNING_KEY sets the key: rotate it there (and keep the old public key "
            "in [audit] trusted_keys)"
        )
    new = rotate(data_dir(db or settings.db_url))
    console.print(shown(f"The audit log is now signed by key {new.kid} (public key {new.x})."))


@audit_app.command("export")
def audit_export(
    fmt: Annotated[str, typer.Option("--format", help="Output format: jsonl.")] = "jsonl",
    request_id: Annotated[
        str | None, typer.Option("--request", help="Only this request's events.")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Print every audit event, one JSON object per line, in log order (each with its seal
    once sealed): a file 'signoff audit verify --log' checks offline."""
    if fmt != "jsonl":
        raise ConfigError(f"unknown format {fmt!r}: use jsonl")

    async def export(client: Client) -> None:
        after = 0
        while True:
            page = await client.audit_events(request_id=request_id, after=after, limit=1000)
            for event in page.events:
                line = json.dumps(event.to_dict(), ensure_ascii=False)
                sys.stdout.write(printable(line) + "\n")
            if page.next_after is None:
                return
            after = page.next_after

    _run(_with_client(url, token, export))


# -- durable runs --------------------------------------------------------------------------
