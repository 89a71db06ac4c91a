"""Durable runs' commands: list, resume."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from signoff.cli._common import (
    ConfigOption,
    DbOption,
    JsonOption,
    _config,
    _print_json,
    _run,
    _settings,
    console,
    runs_app,
)
from signoff.errors import (
    NotFound,
    SignoffError,
    UsageError,
)
from signoff.safe_text import printable, redact

if TYPE_CHECKING:
    pass


@runs_app.command("list")
def runs_list(
    db: DbOption = None,
    status: Annotated[str | None, typer.Option(help="running or finished.")] = None,
    json_out: JsonOption = False,
) -> None:
    """List the durable runs in the store, most recent first."""
    from signoff.connect import connect
    from signoff.stores.base import RunQuery

    async def fetch() -> list[Any]:
        store = connect(db or _settings().db_url, existing=True).store
        async with store:
            return await store.list_runs(RunQuery(status=status, limit=200))

    runs = _run(fetch())
    if json_out:
        _print_json([r.model_dump(mode="json") for r in runs])
        return
    table = Table()
    for column in ("run", "agent", "status", "provider", "turns", "updated", "app (hint)"):
        table.add_column(column, no_wrap=column == "run")
    for r in runs:
        updated = f"{r.updated_at:%Y-%m-%d %H:%M:%S}"
        table.add_row(
            *(
                printable(value)
                for value in (r.run_id, r.agent_id, r.status, r.provider, str(r.turns), updated)
            ),
            printable(r.app or ""),
        )
    console.print(table if runs else "No runs.")


@runs_app.command("resume")
def runs_resume(
    run_id: Annotated[str, typer.Argument(metavar="ID", help="The run's id.")],
    app_spec: Annotated[
        str | None,
        typer.Option("--app", help="module:factory giving the client, gate and tools."),
    ] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="The run's agent, where several used its id.")
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Continue a run from its last checkpoint: waits for pending decisions, runs each
    approved tool once, and carries the conversation on to the model's final answer.

    The code it imports comes only from you: --app, or the run's recorded app when that is
    listed in the config's [runs] apps. A run's recorded app was written by its agent."""
    from signoff.connect import connect
    from signoff.integrations.resume import resume
    from signoff.stores.base import RunQuery

    cfg = _config(config)

    async def go() -> str:
        spec, agent_id = app_spec, agent
        if spec is None:
            store = connect(db or _settings().db_url, existing=True).store
            async with store:
                found = await store.list_runs(RunQuery(run_id=run_id, owner=agent, limit=2))
            if not found:
                raise NotFound(f"no run {run_id} in {redact(db or _settings().db_url)}")
            if len(found) > 1:
                agents = ", ".join(sorted(r.owner for r in found))
                raise UsageError(f"several agents have a run {run_id} ({agents}): pass --agent")
            record = found[0]
            if record.app is None:
                raise UsageError(f"run {run_id} records no app; pass --app module:factory")
            if record.app not in cfg.runs.apps:
                raise SignoffError(
                    f"run {run_id} names the app {printable(record.app)!r}, written by the agent "
                    "that ran it, which is not in [runs] apps: pass --app module:factory, or "
                    "list it in the config's [runs] apps"
                )
            spec, agent_id = record.app, record.owner
        result = await resume(run_id, app=spec, agent_id=agent_id, allowed_apps=cfg.runs.apps)
        return result.final_text

    text = _run(go())
    console.print(printable(text), markup=False)


# -- the MCP gateway -----------------------------------------------------------------------
