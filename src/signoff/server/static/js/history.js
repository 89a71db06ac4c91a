// Decided requests: who decided, when, through which channel, what they changed, and what
// happened when the tool ran. Auditors also see whether the audit chain is intact.

import { api, whoAmI } from "./api.js";
import { $, h, show } from "./dom.js";
import { subscribe } from "./live.js";
import { requestPager } from "./pager.js";
import { setServerTime, when } from "./time.js";
import { errorText, riskBadge, statusBadge } from "./ui.js";

const PAGE_SIZE = 100;

export async function historyPage() {
  const me = await whoAmI();
  setServerTime(me.server_time);
  const list = $("#history");
  const form = $("#history-filters");
  const shown = new Map();

  auditPanel(me);

  function filters() {
    return Object.fromEntries([...new FormData(form).entries()].map(([k, v]) => [k, String(v).trim()]));
  }

  function wanted(request) {
    const f = filters();
    return (
      request.status !== "pending" &&
      (!f.status || request.status === f.status) &&
      (!f.tool || request.tool === f.tool) &&
      (!f.agent_id || request.run.agent_id === f.agent_id)
    );
  }

  function place(request, { prepend = false } = {}) {
    const element = entry(request);
    const old = shown.get(request.id);
    if (old) old.replaceWith(element);
    else if (prepend) list.prepend(element);
    else list.append(element);
    shown.set(request.id, element);
    show($("#history-empty"), shown.size === 0);
  }

  const { load, onEvent } = requestPager({
    list,
    pageSize: PAGE_SIZE,
    filters,
    ids: { more: "#history-more", error: "#history-error", empty: "#history-empty" },
    reset: () => shown.clear(),
    add: (request) => {
      if (wanted(request)) place(request);
    },
    live: (type, request) => {
      if (shown.has(request.id)) place(request);
      else if (wanted(request)) place(request, { prepend: true });
    },
    size: () => shown.size,
  });

  subscribe(onEvent, { onResync: () => load() });

  let typing = null;
  form.addEventListener("input", () => {
    window.clearTimeout(typing);
    typing = window.setTimeout(() => load(), 250);
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  $("#history-more").addEventListener("click", () => load({ more: true }));
  await load();
}

const VERBS = { approve: "Approved", reject: "Rejected", respond: "Answered in the tool's place" };

function entry(request) {
  const changes = Object.keys({ ...request.args, ...request.final_args })
    .filter((k) => JSON.stringify(request.args[k]) !== JSON.stringify(request.final_args[k]))
    .map((k) => h("span", { class: "change" }, h("code", {}, k), " ", h("span", { class: "mono" }, JSON.stringify(request.args[k])), " → ", h("strong", { class: "mono" }, JSON.stringify(request.final_args[k]))));
  const decisions = request.decisions.map((d) =>
    h("li", {}, `${VERBS[d.decision] ?? d.decision} by `, h("strong", {}, d.by), ` (${d.role ?? "no role"}) via ${d.via}, ${when(d.at)}`, d.reason ? ` — “${d.reason}”` : ""),
  );
  if (request.status === "expired") decisions.push(h("li", {}, `Expired ${when(request.decided_at)}: nobody decided in time.`));
  if (request.status === "cancelled") decisions.push(h("li", {}, `Cancelled by the agent ${when(request.decided_at)}.`));
  const outcome = request.outcome
    ? request.outcome.status
    : request.status === "approved"
      ? request.consumed_at ? "running" : "not run yet"
      : "not run";
  return h(
    "li",
    { class: "card history-entry", dataset: { id: request.id, status: request.status } },
    h(
      "div",
      { class: "card-title" },
      h("a", { href: `/requests/${encodeURIComponent(request.id)}` }, request.tool),
      statusBadge(request.status),
      riskBadge(request.risk),
      h("span", { class: "muted" }, request.reason ?? ""),
    ),
    h("ul", { class: "history-lines" }, decisions),
    h(
      "p",
      { class: "history-meta" },
      h("span", {}, "Changed: ", changes.length ? changes : "nothing"),
      h("span", {}, "Tool: ", h("strong", { dataset: { role: "outcome" } }, outcome)),
      h("span", {}, "Agent: ", request.run.agent_id),
    ),
  );
}

async function auditPanel(me) {
  const box = $("#audit-status");
  if (!me.auditor) {
    box.replaceChildren(h("p", { class: "muted" }, `Reading and exporting the audit log needs the highest role (${me.roles.at(-1)}).`));
    return;
  }
  try {
    const result = await api("/v1/audit/verify");
    const state = result.ok
      ? h("p", { class: "success", dataset: { role: "audit-ok" } }, `The audit chain is intact: ${result.events} events.`)
      : h("p", { class: "error", role: "alert", dataset: { role: "audit-broken" } }, `The audit chain is broken at event ${result.first_bad?.seq}: ${result.first_bad?.reason ?? "altered"}.`);
    box.replaceChildren(
      state,
      h("p", {}, "Head: ", h("code", { class: "mono" }, result.head), h("span", { class: "muted" }, " — keep a copy outside the database: it shows if the newest events were cut off.")),
      h("p", {}, h("a", { class: "btn", href: "/v1/audit/export", download: "" }, "Export the audit log (JSON lines)")),
    );
  } catch (error) {
    box.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(error)));
  }
}
