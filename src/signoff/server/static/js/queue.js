// The queue: requests arrive live, each with what an on-call approver needs to decide in
// seconds, and can be approved or rejected here, one at a time or several at once.

import { api, blocked, approvedByMe, approvalsOf, decide, decideMany, progress, whoAmI } from "./api.js";
import { $, announce, h, show } from "./dom.js";
import { subscribe } from "./live.js";
import { requestPager } from "./pager.js";
import { setServerTime, startClock, refreshClock } from "./time.js";
import { age, errorText, escalationLines, expiresIn, riskBadge, statusBadge } from "./ui.js";

const PAGE_SIZE = 50;

export async function queuePage() {
  const me = await whoAmI();
  setServerTime(me.server_time);
  const list = $("#queue");
  const form = $("#filters");
  const cards = new Map(); // id → {request, element}
  const selected = new Set();

  readFiltersFromUrl(form);

  function filters() {
    const data = new FormData(form);
    return Object.fromEntries([...data.entries()].map(([k, v]) => [k, String(v).trim()]));
  }

  function matches(request) {
    const f = filters();
    return (
      (!f.status || request.status === f.status) &&
      (!f.risk || request.risk === f.risk) &&
      (!f.tool || request.tool === f.tool) &&
      (!f.agent_id || request.run.agent_id === f.agent_id)
    );
  }

  // -- rendering ---------------------------------------------------------------------

  function card(request) {
    const why = blocked(me, request);
    const mineAlready = request.status === "pending" && approvedByMe(me, request);
    const canDecide = !why && !mineAlready;
    const label = `${request.tool} ${request.reason ?? ""}`.trim();
    const checkbox = h("input", {
      type: "checkbox",
      class: "select",
      "aria-label": `Select ${label}`,
      disabled: !canDecide,
      checked: canDecide && selected.has(request.id),
    });
    checkbox.addEventListener("change", () => {
      if (checkbox.checked) selected.add(request.id);
      else selected.delete(request.id);
      updateBatchBar();
    });
    const approvals = approvalsOf(request).length;
    const li = h(
      "li",
      {
        class: "card",
        dataset: { id: request.id, status: request.status, tool: request.tool },
        "aria-label": `${request.tool}, ${request.risk} risk, ${request.status}`,
      },
      h("div", { class: "card-select" }, checkbox),
      h(
        "div",
        { class: "card-main" },
        h(
          "h3",
          { class: "card-title" },
          h("a", { href: `/requests/${encodeURIComponent(request.id)}` }, request.tool),
          riskBadge(request.risk),
          statusBadge(request.status),
        ),
        h("p", { class: "card-reason" }, request.reason || h("span", { class: "muted" }, "No reason given.")),
        h(
          "dl",
          { class: "meta" },
          h("div", {}, h("dt", {}, "Agent"), h("dd", {}, request.run.agent_id)),
          h("div", {}, h("dt", {}, "Asked"), h("dd", {}, age(request.created_at))),
          h("div", {}, h("dt", {}, "Expires"), h("dd", { class: "expires" }, expiresIn(request))),
          h("div", {}, h("dt", {}, "Needs"), h("dd", {}, `${request.policy.min_role}`, request.policy.quorum > 1 ? ` · ${approvals}/${request.policy.quorum}` : "")),
        ),
      ),
      h(
        "div",
        { class: "card-actions" },
        // only what the policy lets approvers do here (answers and edits: on the request's page)
        h("button", { type: "button", class: "btn btn-approve", dataset: { action: "approve" }, disabled: !canDecide, hidden: !allows(request, "approve"), "aria-label": `Approve ${label}` }, "Approve"),
        h("button", { type: "button", class: "btn btn-reject", dataset: { action: "reject" }, disabled: !canDecide, hidden: !allows(request, "reject"), "aria-label": `Reject ${label}`, "aria-expanded": "false" }, "Reject…"),
        h("a", { class: "btn", href: `/requests/${encodeURIComponent(request.id)}`, "aria-label": `Open ${label}` }, "Open"),
      ),
      note(request, why, mineAlready),
      escalated(request),
    );
    li.querySelector('[data-action="approve"]').addEventListener("click", () => approve(request.id));
    li.querySelector('[data-action="reject"]').addEventListener("click", (e) => toggleReject(request.id, e.currentTarget));
    li.addEventListener("countdown-zero", () => expiredLocally(request.id));
    return li;
  }

  function escalated(request) {
    const lines = escalationLines(request);
    if (!lines.length) return null;
    return h("div", { class: "card-escalated notice", dataset: { role: "escalations" } }, h("span", {}, "Escalated:"), h("ul", { class: "escalations" }, lines));
  }

  function note(request, why, mineAlready) {
    if (request.status !== "pending") {
      const last = request.decisions.at(-1);
      const by = last && request.status !== "expired" ? ` by ${last.by}` : "";
      return h("p", { class: "card-note muted" }, `${capitalize(request.status)}${by}.`);
    }
    if (why) return h("p", { class: "card-note notice", dataset: { role: "blocked" } }, why);
    if (mineAlready) return h("p", { class: "card-note muted" }, "You approved this; it waits for more approvals.");
    return null;
  }

  function upsert(request, { prepend = false, fresh = false } = {}) {
    const old = cards.get(request.id);
    if (old && progress(old.request) > progress(request)) return; // never go back to an older state
    const element = card(request);
    if (fresh) element.classList.add("is-new");
    if (old) {
      const hadFocus = old.element.contains(document.activeElement) ? document.activeElement.dataset.action : null;
      old.element.replaceWith(element);
      if (hadFocus) element.querySelector(`[data-action="${hadFocus}"]`)?.focus();
    } else if (prepend) list.prepend(element);
    else list.append(element);
    if (request.status !== "pending" || blocked(me, request)) selected.delete(request.id);
    cards.set(request.id, { request, element });
    remember(request);
    show($("#queue-empty"), cards.size === 0);
    refreshClock();
    updateBatchBar();
  }

  function expiredLocally(id) {
    const entry = cards.get(id);
    if (!entry || entry.request.status !== "pending") return;
    // the server's sweeper confirms within a second; until then, nobody can decide it
    upsert({ ...entry.request, status: "expired" });
    announce(`Expired: ${entry.request.tool}`);
  }

  // -- actions -----------------------------------------------------------------------

  function showError(id, error) {
    const entry = cards.get(id);
    if (!entry) return;
    entry.element.querySelector(".card-error")?.remove();
    entry.element.append(h("p", { class: "card-error error", role: "alert" }, errorText(error)));
  }

  async function approve(id) {
    try {
      const updated = await decide(cards.get(id).request, "approve");
      upsert(updated);
      announce(`${capitalize(updated.status === "pending" ? "approval recorded" : updated.status)}: ${updated.tool}`);
    } catch (error) {
      showError(id, error);
      if (error.status === 409) refresh(id);
    }
  }

  function toggleReject(id, button) {
    const entry = cards.get(id);
    const open = entry.element.querySelector(".card-form");
    if (open) {
      open.remove();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    button.setAttribute("aria-expanded", "true");
    const fieldId = `reason-${id}`;
    const reason = h("textarea", { id: fieldId, required: true, rows: 2, "aria-describedby": `${fieldId}-hint` });
    const rejectForm = h(
      "form",
      { class: "card-form", novalidate: true },
      h("div", { class: "field" }, h("label", { for: fieldId }, "Reason (required)"), reason, h("span", { class: "hint", id: `${fieldId}-hint` }, "The agent's model is told this.")),
      h("div", { class: "row" }, h("button", { type: "submit", class: "btn btn-reject" }, "Reject"), h("button", { type: "button", class: "btn btn-quiet", dataset: { action: "cancel-reject" } }, "Cancel")),
    );
    rejectForm.querySelector('[data-action="cancel-reject"]').addEventListener("click", () => {
      rejectForm.remove();
      button.setAttribute("aria-expanded", "false");
      button.focus();
    });
    rejectForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!reason.value.trim()) {
        reason.setAttribute("aria-invalid", "true");
        showError(id, new Error("Give a reason: the agent's model is told why."));
        reason.focus();
        return;
      }
      try {
        const updated = await decide(cards.get(id).request, "reject", { reason: reason.value.trim() });
        upsert(updated);
        announce(`Rejected: ${updated.tool}`);
      } catch (error) {
        showError(id, error);
      }
    });
    entry.element.append(rejectForm);
    reason.focus();
  }

  async function refresh(id) {
    try {
      upsert(await api(`/v1/requests/${encodeURIComponent(id)}`));
    } catch {
      /* shown already */
    }
  }

  // -- batch ---------------------------------------------------------------------------

  const selectAll = $("#select-all");
  const approveSelected = $("#batch-approve");
  const rejectSelected = $("#batch-reject");
  const batchReason = $("#batch-reason");
  const results = $("#batch-results");

  function decidable() {
    return [...cards.values()]
      .filter(({ request }) => request.status === "pending" && !blocked(me, request) && !approvedByMe(me, request))
      .map(({ request }) => request.id);
  }

  function updateBatchBar() {
    $("#selected-count").textContent = `${selected.size} selected`;
    approveSelected.disabled = selected.size === 0;
    rejectSelected.disabled = selected.size === 0;
    const all = decidable();
    selectAll.checked = all.length > 0 && all.every((id) => selected.has(id));
    selectAll.disabled = all.length === 0;
  }

  selectAll.addEventListener("change", () => {
    for (const id of decidable()) {
      if (selectAll.checked) selected.add(id);
      else selected.delete(id);
    }
    for (const [id, { element }] of cards) {
      const box = element.querySelector("input.select");
      if (!box.disabled) box.checked = selected.has(id);
    }
    updateBatchBar();
  });

  async function batch(decision) {
    const ids = [...selected];
    const reason = batchReason.value.trim();
    if (decision === "reject" && !reason) {
      batchReason.setAttribute("aria-invalid", "true");
      results.replaceChildren(h("p", { class: "error", role: "alert" }, "Give a reason to reject: the agents' models are told why."));
      batchReason.focus();
      return;
    }
    batchReason.removeAttribute("aria-invalid");
    approveSelected.disabled = rejectSelected.disabled = true;
    try {
      const shown = ids.map((id) => cards.get(id)?.request ?? { id });
      const answer = await decideMany(shown, decision, reason || undefined);
      const lines = answer.results.map((result) => {
        const tool = cards.get(result.id)?.request.tool ?? result.id;
        if (result.status === 200) {
          upsert(result.request);
          selected.delete(result.id);
          return h("li", { class: "result-ok", dataset: { id: result.id, status: "200" } }, `${tool} (${result.id}): ${result.request.status}`);
        }
        refresh(result.id);
        return h("li", { class: "result-failed", dataset: { id: result.id, status: String(result.status) } }, `${tool} (${result.id}): not ${decision === "approve" ? "approved" : "rejected"} — ${result.problem?.detail ?? result.status}`);
      });
      const ok = answer.results.filter((r) => r.status === 200).length;
      const summary = `${ok} of ${answer.results.length} ${decision === "approve" ? "approved" : "rejected"}.`;
      results.replaceChildren(h("div", { class: ok === answer.results.length ? "success" : "notice" }, h("strong", {}, summary), h("ul", {}, lines)));
      announce(summary);
      if (decision === "reject") batchReason.value = "";
    } catch (error) {
      results.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(error)));
    }
    for (const [id, { element }] of cards) {
      const box = element.querySelector("input.select");
      box.checked = !box.disabled && selected.has(id);
    }
    updateBatchBar();
  }

  approveSelected.addEventListener("click", () => batch("approve"));
  rejectSelected.addEventListener("click", () => batch("reject"));

  // -- loading and live updates ---------------------------------------------------------------

  function live(type, request) {
    if (cards.has(request.id)) {
      upsert(request);
      if (type === "request.expired") announce(`Expired: ${request.tool}`);
    } else if (type === "request.created" && matches(request)) {
      upsert(request, { prepend: true, fresh: true });
      announce(`New request: ${request.tool}. ${request.reason ?? ""}`);
    }
  }

  const { load, onEvent } = requestPager({
    list,
    pageSize: PAGE_SIZE,
    filters,
    ids: { more: "#load-more", error: "#queue-error", empty: "#queue-empty" },
    reset: () => cards.clear(),
    add: upsert,
    live,
    size: () => cards.size,
    afterPage: ({ more }) => {
      if (!more) for (const id of [...selected]) if (!cards.has(id)) selected.delete(id);
    },
    afterAll: updateBatchBar,
  });

  subscribe(onEvent, { onResync: () => load() });

  let typing = null;
  form.addEventListener("input", (event) => {
    window.clearTimeout(typing);
    const delay = event.target.tagName === "INPUT" ? 300 : 0;
    typing = window.setTimeout(() => {
      writeFiltersToUrl(form);
      load();
    }, delay);
  });
  form.addEventListener("reset", () => {
    window.setTimeout(() => {
      writeFiltersToUrl(form);
      load();
    }, 0);
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  $("#load-more").addEventListener("click", () => load({ more: true }));

  await load();
  startClock();
}

const seen = { tools: new Set(), agents: new Set() };

function remember(request) {
  for (const [set, value, id] of [
    [seen.tools, request.tool, "#tools-seen"],
    [seen.agents, request.run.agent_id, "#agents-seen"],
  ]) {
    if (!set.has(value)) {
      set.add(value);
      $(id)?.append(h("option", { value }));
    }
  }
}

function readFiltersFromUrl(form) {
  const params = new URLSearchParams(window.location.search);
  for (const name of ["status", "risk", "tool", "agent_id"]) {
    if (params.has(name) && form.elements[name]) form.elements[name].value = params.get(name);
  }
}

function writeFiltersToUrl(form) {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(form).entries()) {
    const value = String(v).trim();
    if (value && !(k === "status" && value === "pending")) params.set(k, value);
  }
  if (!params.has("status") && form.elements.status.value === "") params.set("status", "");
  const query = params.toString();
  window.history.replaceState(null, "", query ? `/?${query}` : "/");
}

function capitalize(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function allows(request, decision) {
  return (request.policy.decisions ?? ["approve", "edit", "reject", "respond"]).includes(decision);
}
