"""Render the Slack channel's message for docs/channels.md: the Block Kit JSON the channel
sends (docs/screenshots/slack-message.json) and a screenshot of it drawn by a small HTML
renderer of the blocks in headless Chromium (docs/screenshots/slack-message.png).

    .venv/bin/python scripts/slack_preview.py

The request is a real one (an in-memory approval service), pending, then approved after an
edit. The renderer draws only what the channel uses (header, section, fields, context,
actions, mrkdwn); it imitates Slack's look, it is not Slack.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from signoff.channels.slack.blocks import Look, render
from signoff.connect import connect
from signoff.models import Principal, RequestSpec, Run
from signoff.service import ApprovalService

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
EMOJI = {
    ":large_orange_circle:": "🟠",
    ":red_circle:": "🔴",
    ":large_yellow_circle:": "🟡",
    ":large_green_circle:": "🟢",
    ":white_check_mark:": "✅",
    ":x:": "❌",
    ":hourglass:": "⌛",
    ":no_entry_sign:": "🚫",
    ":ballot_box_with_check:": "☑️",
}
PEOPLE = {"U024BE7LH": "alice"}


def mrkdwn(text: str) -> str:
    """Slack's mrkdwn (already entity-escaped by the channel) → HTML."""
    blocks: list[str] = []

    def keep(match: re.Match[str]) -> str:
        blocks.append(match.group(1))
        return f"\x00{len(blocks) - 1}\x00"

    text = re.sub(r"```(.*?)```", keep, text, flags=re.S)
    text = re.sub(r"<!date\^\d+\^[^|]*\|([^>]*)>", r"\1", text)
    text = re.sub(
        r"<@(U\w+)>", lambda m: f'<span class="at">@{PEOPLE.get(m[1], m[1])}</span>', text
    )
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r'<a href="\1">\2</a>', text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", text)
    text = re.sub(r"(?<!\w)_([^_\n]+)_(?!\w)", r"<i>\1</i>", text)
    text = re.sub(r"(?m)^&gt;(.*)$", r'<span class="quote">\1</span>', text)
    for code, char in EMOJI.items():
        text = text.replace(code, char)
    text = text.replace("\n", "<br>")
    return re.sub(r"\x00(\d+)\x00", lambda m: f"<pre>{blocks[int(m[1])]}</pre>", text)


def element(part: dict[str, Any]) -> str:
    if part["type"] == "mrkdwn":
        return mrkdwn(part["text"])
    return html.escape(part["text"])


def block(b: dict[str, Any]) -> str:
    kind = b["type"]
    if kind == "header":
        return f'<div class="header">{html.escape(b["text"]["text"])}</div>'
    if kind == "section":
        out = f'<div class="text">{element(b["text"])}</div>' if "text" in b else ""
        if "fields" in b:
            cells = "".join(f'<div class="field">{element(f)}</div>' for f in b["fields"])
            out += f'<div class="fields">{cells}</div>'
        return f'<div class="section">{out}</div>'
    if kind == "context":
        parts = " ".join(element(e) for e in b["elements"])
        return f'<div class="context">{parts}</div>'
    if kind == "actions":
        buttons = "".join(
            f'<span class="button {e.get("style", "")}">{html.escape(e["text"]["text"])}</span>'
            for e in b["elements"]
        )
        return f'<div class="actions">{buttons}</div>'
    return ""


def message(blocks: list[dict[str, Any]], caption: str) -> str:
    body = "".join(block(b) for b in blocks)
    return f"""<div class="caption">{caption}</div>
<div class="message"><div class="avatar">✓</div><div class="content">
<div class="name">signoff <span class="app">APP</span> <span class="time">10:42</span></div>
{body}</div></div>"""


STYLE = """
body { font-family: "Lato", "Noto Sans", "DejaVu Sans", sans-serif; font-size: 15px;
       color: #1d1c1d; background: #fff; margin: 0; padding: 16px 20px; width: 720px; }
.caption { color: #616061; font-size: 12px; text-transform: uppercase; letter-spacing: .05em;
           margin: 18px 0 6px; }
.message { display: flex; gap: 10px; padding: 8px 0; border-top: 1px solid #eee; }
.avatar { width: 36px; height: 36px; border-radius: 6px; background: #3b5b4f; color: #fff;
          display: flex; align-items: center; justify-content: center; font-weight: bold;
          flex: none; }
.content { flex: 1; min-width: 0; }
.name { font-weight: 900; margin-bottom: 4px; }
.app { background: #ddd; color: #616061; font-size: 10px; padding: 1px 3px; border-radius: 2px;
       font-weight: 700; }
.time { color: #616061; font-weight: 400; font-size: 12px; }
.header { font-size: 18px; font-weight: 900; margin: 4px 0 8px; }
.section { margin: 6px 0; line-height: 1.45; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 16px; margin-top: 6px; }
pre { background: #f8f8f8; border: 1px solid #ddd; border-radius: 4px; padding: 8px;
      font-size: 12px; margin: 4px 0; white-space: pre-wrap; }
code { background: #f4f4f4; border: 1px solid #ddd; border-radius: 3px; color: #e01e5a;
       font-size: 12px; padding: 0 3px; }
.quote { border-left: 4px solid #ddd; padding-left: 8px; display: inline-block; }
.at { background: #e8f5fa; color: #1264a3; border-radius: 3px; padding: 0 2px; }
a { color: #1264a3; text-decoration: none; }
.context { color: #616061; font-size: 12px; margin-top: 8px; }
.actions { margin: 10px 0 4px; display: flex; gap: 8px; }
.button { border: 1px solid #bbb; border-radius: 4px; padding: 4px 12px; font-weight: 700;
          font-size: 13px; }
.button.primary { background: #007a5a; color: #fff; border-color: #007a5a; }
.button.danger { color: #e01e5a; border-color: #e01e5a; }
"""


async def requests() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    backends = connect("memory://")
    async with ApprovalService(backends.store, backends.bus, sweep=False) as service:
        spec = RequestSpec(
            tool="issue_refund",
            args={"order_id": "ORD-1042", "amount": 250, "currency": "USD"},
            run=Run(agent_id="support-bot", run_id="run-7f3a"),
            reason="Refund $250 to the customer for order ORD-1042",
            risk="high",
            context={
                "why": "The customer was charged twice for one order",
                "affected": "Order ORD-1042 (one customer)",
                "reversible": False,
            },
            policy={"min_role": "publisher", "timeout_s": 1800, "editable": ["amount"]},
            args_schema={
                "type": "object",
                "properties": {"amount": {"type": "number", "exclusiveMinimum": 0}},
            },
        )
        created = await service.submit(spec, Principal(sub="support-bot", kind="agent"))
        look = Look(public_url="https://signoff.example.com", people={"alice": "U024BE7LH"})
        _, pending = render(created.request, look)
        alice = Principal(sub="alice", role="publisher")
        approved = await service.decide(
            created.request.id, alice, "approve", modified_args={"amount": 200}, via="slack"
        )
        _, final = render(approved, look)
    return pending, final


def main() -> None:
    pending, final = asyncio.run(requests())
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "slack-message.json").write_text(json.dumps({"blocks": pending}, indent=2) + "\n")
    page = (
        f"<!doctype html><meta charset=utf-8><style>{STYLE}</style>"
        + message(pending, "Posted: waiting for a decision")
        + message(final, "The same message, updated after Alice edited the amount and approved")
    )
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "slack.html"
        source.write_text(page)
        subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                f"--screenshot={OUT / 'slack-message.png'}",
                "--window-size=760,1270",
                source.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    sys.stdout.write(f"wrote {OUT / 'slack-message.json'} and {OUT / 'slack-message.png'}\n")


if __name__ == "__main__":
    main()
