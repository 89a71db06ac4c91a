// Policy replay, for the highest role: a candidate policy file (pasted) evaluated against
// the calls already made (POST /v1/policy/replay, the same report as `signoff policy
// replay`). Nothing is written; the page only shows what the candidate would have done.

import { api, whoAmI } from "./api.js";
import { $, announce, h, show } from "./dom.js";
import { setServerTime, when } from "./time.js";
import { errorText, table } from "./ui.js";

const VERDICTS = ["run", "ask", "deny", "code"];

export async function replayPage() {
  const me = await whoAmI();
  setServerTime(me.server_time);
  const form = $("#replay-form");
  const error = $("#replay-error");
  const out = $("#replay-report");
  if (!me.auditor) {
    // the replay reads the whole history and the audit log: the highest role's
    $("#replay-access").replaceChildren(
      h("p", { class: "notice", dataset: { role: "needs-role" } }, `Policy replay needs the highest role (${me.roles.at(-1)}); you are ${me.role ?? "without a role"}.`),
    );
    return;
  }
  show(form, true);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { config: String(data.get("config") ?? "") };
    const since = String(data.get("since") ?? "");
    if (since) body.since = since;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    out.setAttribute("aria-busy", "true");
    try {
      const report = await api("/v1/policy/replay", { method: "POST", body });
      out.replaceChildren(...render(report));
      show(error, false);
      announce(`Replayed ${report.total} past calls.`);
    } catch (failure) {
      error.textContent = errorText(failure);
      show(error, true);
      out.replaceChildren();
    } finally {
      button.disabled = false;
      out.setAttribute("aria-busy", "false");
    }
  });
}

function render(report) {
  const period = report.since ? `since ${new Date(report.since).toLocaleString()}` : "over the whole history";
  const parts = [h("p", { dataset: { role: "replay-total" } }, h("strong", {}, String(report.total)), ` past call${report.total === 1 ? "" : "s"} replayed ${period}.`)];
  const kinds = Object.entries(report.changed);
  parts.push(
    h(
      "section",
      { class: "panel", "aria-labelledby": "replay-changed", dataset: { role: "replay-changed" } },
      h("h2", { id: "replay-changed" }, "What would change"),
      kinds.length
        ? h(
            "ul",
            { class: "change-list" },
            kinds.map(([kind, count]) =>
              h("li", { class: kind === "run_rejected" ? "notice" : null, dataset: { change: kind } }, h("strong", {}, String(count)), ` call${count === 1 ? "" : "s"} ${report.change_kinds[kind] ?? kind}`),
            ),
          )
        : h("p", { class: "muted" }, "Nothing: the candidate would have treated every call as it was treated."),
    ),
  );
  const tools = Object.entries(report.tools);
  parts.push(
    h(
      "section",
      { class: "panel", "aria-labelledby": "replay-tools" },
      h("h2", { id: "replay-tools" }, "By tool"),
      tools.length
        ? table(
            ["Tool", "Would run", "Would ask", "Would deny", "Left to code", "What happened"],
            tools.map(([tool, counts]) => [tool, ...VERDICTS.map((v) => counts.verdicts[v] ?? 0), happened(counts.happened)]),
          )
        : h("p", { class: "muted" }, "No calls in this period."),
    ),
  );
  if (report.changes.length) {
    parts.push(
      h(
        "section",
        { class: "panel", "aria-labelledby": "replay-calls" },
        h("h2", { id: "replay-calls" }, "The calls that would change"),
        report.changes_truncated ? h("p", { class: "muted" }, `The first ${report.changes.length} are listed; the counts above cover them all.`) : null,
        table(
          ["When", "Tool", "Agent", "Then", "Would now", "Call"],
          report.changes.map((c) => [when(c.at), c.tool, c.agent_id, then(c), wouldNow(c), callLink(c)]),
        ),
      ),
    );
  }
  return parts;
}

function happened(counts) {
  return Object.entries(counts).map(([what, n]) => `${what} ${n}`).join(", ");
}

function then(change) {
  if (change.happened === "ran") return "ran (shadow mode)";
  const who = change.then.min_role ? ` (${change.then.min_role}${change.then.quorum > 1 ? ` ×${change.then.quorum}` : ""})` : "";
  return `${change.happened}${who}`;
}

function wouldNow(change) {
  const who = change.verdict === "ask" && change.min_role ? ` ${change.min_role}${change.quorum > 1 ? ` ×${change.quorum}` : ""}` : "";
  return `${change.verdict}${who}${change.note ? ` — ${change.note}` : ""}`;
}

function callLink(change) {
  if (change.source !== "request") return h("code", {}, change.id);
  return h("a", { href: `/requests/${encodeURIComponent(change.id)}`, class: "mono" }, change.id);
}
