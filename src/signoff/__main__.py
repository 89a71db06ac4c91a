from __future__ import annotations

from signoff.cli import main

main()
