"""``signoff approve ID --grant``, ``signoff grants``, ``signoff grants revoke`` against a
real server and a real agent process."""

from __future__ import annotations

import json

import pytest

from tests.acceptance.conftest import Served, finish
from tests.acceptance.test_cli import REFUND, one_line_error

pytestmark = pytest.mark.slow


def test_grant_list_and_revoke_from_the_cli(served: Served) -> None:
    publisher = served.token("--sub", "paul", "--role", "publisher")
    agent = served.agent(REFUND)
    [request] = served.pending(publisher)
    approved = served.signoff(
        "approve", request["id"], "--grant", "1h", token=publisher, check=True
    )
    assert f"{request['id']}: approved" in approved.stdout and "granted: grt_" in approved.stdout
    assert finish(agent)["status"] == "executed"

    # the same call again runs at once: nobody is asked
    again = finish(served.agent(REFUND))
    assert again["status"] == "executed"

    listed = json.loads(
        served.signoff("grants", "list", "--json", token=publisher, check=True).stdout
    )
    (grant,) = listed
    assert grant["tool"] == "issue_refund" and grant["active"] is True
    table = served.signoff("grants", "list", token=publisher, check=True).stdout
    assert grant["id"] in table and "live" in table

    revoked = served.signoff("grants", "revoke", grant["id"], token=publisher, check=True)
    assert f"{grant['id']} is revoked" in revoked.stdout
    assert "no grants" in served.signoff("grants", token=publisher, check=True).stdout
    everything = served.signoff("grants", "list", "--all", token=publisher, check=True).stdout
    assert "revoked" in everything
    # the bare group is its list, options and all (docs/cli.md writes it so)
    assert served.signoff("grants", "--all", token=publisher, check=True).stdout == everything
    one_line_error(served.signoff("grants", "revoke", grant["id"], token=publisher), "already")


def test_bad_grants_are_one_line_errors(served: Served) -> None:
    publisher = served.token("--sub", "paul", "--role", "publisher")
    served.agent(REFUND)
    [request] = served.pending(publisher)
    for bad, fragment in (("100y", "ttl"), ("9d", "between"), ("1h:all", "scope")):
        result = served.signoff("approve", request["id"], "--grant", bad, token=publisher)
        one_line_error(result, fragment)
    edited = served.signoff(
        "approve", request["id"], "--set", "amount=1", "--grant", "1h", token=publisher
    )
    one_line_error(edited, "without edits")


def test_deliveries_from_the_cli(served: Served) -> None:
    """docs/cli.md's forms: ``signoff deliveries --status failed`` (the bare group is its
    list) and ``signoff deliveries retry ID``."""
    admin = served.token("--sub", "ada", "--role", "admin")
    listed = served.signoff("deliveries", "--status", "failed", "--json", token=admin, check=True)
    assert json.loads(listed.stdout) == []
    assert "no deliveries" in served.signoff("deliveries", token=admin, check=True).stdout
    one_line_error(served.signoff("deliveries", "--status", "lost", token=admin), "status")
    one_line_error(served.signoff("deliveries", "retry", "dlv_nope", token=admin), "dlv_nope")
