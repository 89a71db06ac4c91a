from __future__ import annotations

import signoff


def test_all_is_sorted_and_complete() -> None:
    assert signoff.__all__ == sorted(signoff.__all__)
    for name in signoff.__all__:
        assert hasattr(signoff, name), name
    public = {n for n in vars(signoff) if not n.startswith("_") and n not in {"annotations"}}
    modules = {n for n in public if type(getattr(signoff, n)).__name__ == "module"}
    assert public - modules == set(signoff.__all__) - {"__version__"}


def test_contract_names_are_exported() -> None:
    for name in ("Gate", "Policy", "Run", "Principal", "Rejected", "ApprovalTimeout"):
        assert name in signoff.__all__
