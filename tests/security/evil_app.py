"""A module an agent names as its run's app: importing it leaves a mark, so a test can tell
whether signoff ever imported agent-chosen code."""

from __future__ import annotations

import os
from pathlib import Path

Path(os.environ.get("EVIL_MARK", "evil-was-imported")).write_text("imported")


def build() -> None:
    raise AssertionError("never called")
