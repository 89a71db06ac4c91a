"""``signoff pending``'s table: one line a request, whatever the reason's length."""

from __future__ import annotations

from rich.console import Console

from signoff.cli.approver_cmds import _table
from tests.stores.test_contract import make_request


def test_a_long_reason_is_cut_to_one_line_and_the_id_is_whole() -> None:
    long = make_request(1).model_copy(
        update={"reason": "the customer asked nicely, the order came late and damaged " * 3}
    )
    short = make_request(2).model_copy(update={"reason": "duplicate"})
    console = Console(width=80, record=True, color_system=None)
    console.print(_table([long, short], 80))
    lines = console.export_text().splitlines()
    rows = [line for line in lines if "apr_" in line]
    assert len(rows) == 2  # each request is one row of one line
    assert "apr_0001" in rows[0] and "…" in rows[0]
    assert "apr_0002" in rows[1] and "duplicate" in rows[1]
    assert len(lines) == 6  # the border, the header, its rule, two rows, the border
    assert all(len(line) == 80 for line in lines)  # the reason took the room left, no more
