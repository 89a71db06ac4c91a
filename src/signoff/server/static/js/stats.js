// Time to decision and approval rate, per tool and per approver, over a chosen period.

import { api, whoAmI } from "./api.js";
import { $, h, show } from "./dom.js";
import { barChart, dayChart } from "./charts.js";
import { duration, setServerTime } from "./time.js";
import { errorText, table } from "./ui.js";

// an approver this fast who approves nearly everything is probably not reading any more
const FATIGUE = { minDecisions: 10, medianUnderS: 10, rateAtLeast: 0.95 };

/** A compact duration for chart labels: 4.2s, 6m27s, 3h05m. */
function short(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.floor(seconds % 60)).padStart(2, "0")}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`;
}

const percent = (rate) => (rate === null || rate === undefined ? "—" : `${Math.round(rate * 100)} %`);

export async function statsPage() {
  const me = await whoAmI();
  setServerTime(me.server_time);
  const period = $("#period");
  const params = new URLSearchParams(window.location.search);
  if (params.get("since") && [...period.options].some((o) => o.value === params.get("since"))) {
    period.value = params.get("since");
  }
  period.addEventListener("change", () => {
    window.history.replaceState(null, "", `/stats?since=${encodeURIComponent(period.value)}`);
    load(period.value);
  });
  $("#stats-period").addEventListener("submit", (event) => event.preventDefault());
  await load(period.value);
}

async function load(since) {
  const view = $("#stats-view");
  view.setAttribute("aria-busy", "true");
  try {
    const stats = await api(`/v1/stats?since=${encodeURIComponent(since)}`);
    view.replaceChildren(...render(stats));
    show($("#stats-error"), false);
  } catch (error) {
    $("#stats-error").textContent = errorText(error);
    show($("#stats-error"), true);
  } finally {
    view.setAttribute("aria-busy", "false");
  }
}

function tile(label, value, role) {
  return h("div", { class: "tile", dataset: { role } }, h("span", { class: "value" }, value), h("span", { class: "label" }, label));
}

function fatigued(a) {
  return a.decisions >= FATIGUE.minDecisions && a.median_s !== null && a.median_s < FATIGUE.medianUnderS && a.approval_rate >= FATIGUE.rateAtLeast;
}

function render(stats) {
  const o = stats.overall;
  const out = [
    h(
      "div",
      { class: "tiles" },
      tile("requests", String(stats.requests), "requests"),
      tile("decisions", String(o.decisions), "decisions"),
      tile("approval rate", percent(o.approval_rate), "approval-rate"),
      tile("median time to decision", duration(o.median_s), "median"),
      tile("90th percentile", duration(o.p90_s), "p90"),
    ),
  ];
  if (stats.truncated) out.push(h("p", { class: "notice" }, "The period holds more requests than one answer counts; the figures cover the newest."));
  const timingLegend = h("ul", { class: "legend" }, h("li", {}, h("span", { class: "swatch swatch-median" }), "median"), h("li", {}, h("span", { class: "swatch swatch-p90" }), "90th percentile"));
  const rateLegend = h("ul", { class: "legend" }, h("li", {}, h("span", { class: "swatch swatch-rate" }), "approval rate"));
  const timing = [
    { key: "median_s", name: "median", cls: "bar-median" },
    { key: "p90_s", name: "p90", cls: "bar-p90" },
  ];
  const rate = [{ key: "approval_rate", name: "approval rate", cls: "bar-rate" }];

  const toolRows = stats.tools.map((t) => ({ ...t, label: t.tool }));
  const approverRows = stats.approvers.map((a) => ({ ...a, label: a.approver }));
  const charts = (who, rows) =>
    h(
      "div",
      { class: "stats-charts" },
      h("div", {}, h("h3", {}, "Time to decision"), timingLegend.cloneNode(true), barChart({ title: `Time to decision per ${who}`, rows, series: timing, format: short })),
      h("div", {}, h("h3", {}, "Approval rate"), rateLegend.cloneNode(true), barChart({ title: `Approval rate per ${who}`, rows, series: rate, max: 1, format: percent })),
    );
  out.push(
    h(
      "div",
      { class: "stats-grid" },
      h(
        "section",
        { class: "panel stats-panel", "aria-labelledby": "by-tool", dataset: { role: "tools" } },
        h("h2", { id: "by-tool" }, "Per tool"),
        toolRows.length
          ? [
              charts("tool", toolRows),
              table(
                ["Tool", "Requests", "Decided", "Approval rate", "Rejected", "Expired", "Median", "p90"],
                toolRows.map((t) => [t.tool, t.requests, t.decisions, percent(t.approval_rate), t.rejected, t.expired, duration(t.median_s), duration(t.p90_s)]),
              ),
            ]
          : h("p", { class: "muted" }, "No requests in this period."),
      ),
      h(
        "section",
        { class: "panel stats-panel", "aria-labelledby": "by-approver", dataset: { role: "approvers" } },
        h("h2", { id: "by-approver" }, "Per approver"),
        approverRows.length
          ? [
              charts("approver", approverRows),
              table(
                ["Approver", "Decisions", "Approval rate", "Rejected", "Median", "p90", "Note"],
                approverRows.map((a) => [a.approver, a.decisions, percent(a.approval_rate), a.rejected, duration(a.median_s), duration(a.p90_s), fatigued(a) ? h("span", { class: "fatigue", dataset: { role: "fatigue" } }, "fast, approves nearly all: check for fatigue") : ""]),
              ),
            ]
          : h("p", { class: "muted" }, "No decisions in this period."),
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "by-day", dataset: { role: "days" } },
        h("h2", { id: "by-day" }, "Decisions per day"),
        h("ul", { class: "legend" }, h("li", {}, h("span", { class: "swatch swatch-rate" }), "approved"), h("li", {}, h("span", { class: "swatch swatch-rejected" }), "rejected")),
        dayChart({ title: "Decisions per day", days: fillDays(stats) }),
      ),
      shadowPanel(stats.shadow),
    ),
  );
  return out;
}

// tools in shadow mode ran without asking; this is what their policy would have done
function shadowPanel(shadow) {
  const calls = shadow ? shadow.calls : 0;
  return h(
    "section",
    { class: "panel", "aria-labelledby": "shadow", dataset: { role: "shadow" } },
    h("h2", { id: "shadow" }, "Shadow mode"),
    calls
      ? [
          h("p", { class: "muted" }, `${calls} call${calls === 1 ? "" : "s"} of shadow-mode tools ran without asking; had the policy been enforced:`),
          table(
            ["Tool", "Would run", "Would ask", "Would deny"],
            shadow.tools.map((t) => [t.tool, t.run, t.ask, t.deny]),
          ),
          h("h3", {}, "Newest"),
          table(
            ["Tool", "Would have", "Role", "Agent", "Reason", "When"],
            shadow.recent.map((r) => [r.tool, r.verdict, r.verdict === "run" ? "" : `${r.min_role ?? ""}${r.quorum > 1 ? ` ×${r.quorum}` : ""}`, r.agent_id, r.reason ?? "", new Date(r.at).toLocaleString()]),
          ),
        ]
      : h("p", { class: "muted" }, "No shadow-mode calls in this period."),
  );
}

function fillDays(stats) {
  const byDay = new Map(stats.days.map((d) => [d.day, d]));
  const days = [];
  const end = new Date(stats.until);
  for (let d = new Date(stats.since); d <= end || d.toISOString().slice(0, 10) === end.toISOString().slice(0, 10); d = new Date(d.getTime() + 86_400_000)) {
    const day = d.toISOString().slice(0, 10);
    days.push(byDay.get(day) ?? { day, decisions: 0, approved: 0 });
    if (days.length > 400) break;
  }
  return days;
}
