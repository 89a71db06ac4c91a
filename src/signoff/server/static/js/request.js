// One request: everything needed to decide it, and the three ways to decide.

import { api, approvalsOf, approvedByMe, blocked, decide, progress, whoAmI } from "./api.js";
import { $, announce, facts, h } from "./dom.js";
import { jsonTree } from "./jsontree.js";
import { subscribe } from "./live.js";
import { diffTable, editFields } from "./schemaform.js";
import { duration, refreshClock, setServerTime, startClock, when } from "./time.js";
import { errorText, escalationLines, expiresIn, riskBadge, statusBadge } from "./ui.js";

export async function requestPage() {
  const me = await whoAmI();
  setServerTime(me.server_time);
  const id = document.body.dataset.requestId;
  const view = $("#request-view");
  let current = null;

  async function load() {
    try {
      render(await api(`/v1/requests/${encodeURIComponent(id)}`));
    } catch (error) {
      view.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(error)));
    }
  }

  function render(request, { force = false } = {}) {
    const before = current;
    if (!force && before && progress(before) > progress(request)) return; // an older copy
    current = request;
    // while it stays pending, live updates leave the decide panel alone: whatever the
    // approver is typing there (a reason, an edit) survives
    if (!force && before && before.status === "pending" && request.status === "pending") {
      refreshPanels(request);
      return;
    }
    document.title = `${request.tool} · signoff`;
    view.setAttribute("aria-busy", "false");
    view.replaceChildren(
      h(
        "div",
        { class: "req-head" },
        h("h1", {}, request.tool),
        statusBadge(request.status),
        riskBadge(request.risk),
        request.status === "pending" ? h("span", { class: "muted" }, "Expires: ", expiresIn(request)) : null,
      ),
      h("p", { class: "req-reason" }, request.reason || h("span", { class: "muted" }, "No reason given.")),
      h(
        "div",
        { class: "req-layout" },
        h("div", { class: "req-main" }, contextPanel(request), argumentsPanel(request), policyPanel(request), runPanel(request), decisionsPanel(request), escalationsPanel(request)),
        h("div", { class: "req-side" }, actionsPanel(request)),
      ),
    );
    view.querySelector(".countdown")?.addEventListener("countdown-zero", () => {
      if (current.status === "pending") render({ ...current, status: "expired" }, { force: true });
    });
    refreshClock();
  }

  function refreshPanels(request) {
    for (const [selector, panel] of [
      ["#args-panel", argumentsPanel],
      ["#policy-panel", policyPanel],
      ["#decisions-panel", decisionsPanel],
      ["#escalations-panel", escalationsPanel],
    ]) {
      view.querySelector(selector)?.replaceWith(panel(request));
    }
  }

  // -- panels ---------------------------------------------------------------------------

  function contextPanel(request) {
    const context = { ...request.context };
    const take = (key) => {
      const value = context[key];
      delete context[key];
      return value;
    };
    const why = take("why");
    const affected = take("affected");
    const reversible = take("reversible");
    const alternatives = take("alternatives");
    const reversibleText =
      reversible === true ? "Yes" : reversible === false ? h("strong", {}, "No — this cannot be undone") : text(reversible);
    return h(
      "section",
      { class: "panel", "aria-labelledby": "context-title" },
      h("h2", { id: "context-title" }, "Context"),
      facts([
        ["Why", text(why)],
        ["What is affected", text(affected)],
        ["Reversible?", reversibleText],
        ["Alternatives", Array.isArray(alternatives) ? h("ul", {}, alternatives.map((a) => h("li", {}, text(a)))) : text(alternatives)],
        ...Object.entries(context).map(([key, value]) => [key, text(value)]),
      ]),
    );
  }

  // which escalation steps fired (config [[routes]] escalate): when nobody decided in time,
  // more channels were told, and whoever looks at the request should know who else knows
  function escalationsPanel(request) {
    const lines = escalationLines(request);
    return h(
      "section",
      { class: "panel", id: "escalations-panel", "aria-labelledby": "escalations-title", hidden: lines.length === 0 },
      h("h2", { id: "escalations-title" }, "Escalations"),
      h("ul", { class: "escalations" }, lines),
    );
  }

  function argumentsPanel(request) {
    const changed = Object.keys(request.final_args).some((k) => JSON.stringify(request.args[k]) !== JSON.stringify(request.final_args[k]));
    return h(
      "section",
      { class: "panel", id: "args-panel", "aria-labelledby": "args-title" },
      h("h2", { id: "args-title" }, "Arguments"),
      changed ? h("p", { class: "notice" }, "An approver changed these arguments. The tool runs with the values below.") : null,
      jsonTree(request.final_args, "Arguments"),
      changed ? [h("h3", {}, "Changes"), diffTable(request.args, changedFields(request))] : null,
    );
  }

  function policyPanel(request) {
    const approvals = approvalsOf(request);
    const quorum = request.policy.quorum;
    return h(
      "section",
      { class: "panel", id: "policy-panel", "aria-labelledby": "policy-title" },
      h("h2", { id: "policy-title" }, "Policy"),
      facts([
        ["Minimum role", request.policy.min_role],
        [
          "Approvals",
          h(
            "span",
            { class: "progress" },
            h("progress", { max: quorum, value: Math.min(approvals.length, quorum), "aria-label": "Approvals so far" }),
            `${approvals.length} of ${quorum}`,
          ),
        ],
        ["Approved by", approvals.length ? approvals.join(", ") : null],
        ["Editable", request.policy.editable.length ? request.policy.editable.join(", ") : "nothing"],
        ["Timeout", duration(request.policy.timeout_s)],
        ["Self-approval", request.policy.allow_self_approval ? "allowed" : "not allowed"],
      ]),
    );
  }

  function runPanel(request) {
    return h(
      "section",
      { class: "panel", "aria-labelledby": "run-title" },
      h("h2", { id: "run-title" }, "Run"),
      facts([
        ["Agent", request.run.agent_id],
        ["Run", request.run.run_id],
        ["Session", request.run.session_id],
        ["Requested by", request.requested_by],
        ["Tool call", request.tool_call_id ? h("code", {}, request.tool_call_id) : null],
        ["Asked at", when(request.created_at)],
        ["Expires at", when(request.expires_at)],
        ["Request id", h("code", {}, request.id)],
        ...(Object.keys(request.run.metadata || {}).length ? [["Metadata", jsonTree(request.run.metadata, "Run metadata")]] : []),
      ]),
    );
  }

  function decisionsPanel(request) {
    const items = request.decisions.map((d) =>
      h(
        "li",
        { class: d.decision },
        h("strong", {}, { approve: "Approved", reject: "Rejected", respond: "Answered in the tool's place" }[d.decision] ?? d.decision),
        ` by ${d.by} (${d.role ?? "no role"}) via ${d.via}, ${when(d.at)}`,
        d.modified_args ? h("div", {}, "Changed: ", h("code", {}, JSON.stringify(d.modified_args))) : null,
        d.decision === "respond" ? h("div", {}, "Response: ", h("code", {}, JSON.stringify(d.response))) : null,
        d.reason ? h("div", {}, "Reason: ", d.reason) : null,
        d.grant_id ? h("div", { dataset: { role: "grant" } }, d.via === "grant" ? "By the standing grant " : "Granted: ", h("code", {}, d.grant_id)) : null,
      ),
    );
    if (request.status === "expired") items.push(h("li", {}, h("strong", {}, "Expired"), ` ${when(request.decided_at)}: nobody decided in time.`));
    if (request.status === "cancelled") items.push(h("li", {}, h("strong", {}, "Cancelled"), " by the agent."));
    const outcome = request.outcome
      ? h("p", { class: request.outcome.status === "succeeded" ? "success" : "error" }, `The tool ran: ${request.outcome.status}, ${when(request.outcome.at)}.`)
      : request.consumed_at
        ? h("p", { class: "muted" }, "The tool is running.")
        : null;
    return h(
      "section",
      { class: "panel", id: "decisions-panel", "aria-labelledby": "decisions-title" },
      h("h2", { id: "decisions-title" }, "Decisions"),
      items.length ? h("ol", { class: "timeline" }, items) : h("p", { class: "muted" }, "No decisions yet."),
      outcome,
    );
  }

  // -- deciding ------------------------------------------------------------------------

  /** The approve form's choice of a standing grant (CONTRACT §9): none, this agent's
   * identical calls, or any call of this tool by this agent; and for how long. */
  function grantField(request, disabled) {
    const select = h(
      "select",
      { id: "approve-grant", disabled },
      h("option", { value: "" }, "Only this call"),
      h("option", { value: "identical" }, "Also this agent's identical calls"),
      h("option", { value: "tool" }, `Also any ${request.tool} call by this agent`),
    );
    const ttl = h(
      "select",
      { id: "approve-grant-ttl", disabled: true },
      Object.entries(GRANT_TTLS).map(([value, label]) => h("option", { value, selected: value === "1h" }, label)),
    );
    const ttlField = h("div", { class: "field" }, h("label", { for: "approve-grant-ttl" }, "For"), ttl);
    // a duration only means something with a grant
    const sync = () => {
      ttl.disabled = disabled || !select.value;
    };
    select.addEventListener("change", sync);
    const field = h("div", {}, h("div", { class: "field" }, h("label", { for: "approve-grant" }, "Approve"), select), ttlField);
    return { field, select, ttl, sync };
  }

  /** Where this approver keeps approving the same call, say so and offer a grant for it:
   * approval fatigue is how a person in the loop becomes a rubber stamp. A hint only. */
  async function suggestGrant(request, grant) {
    const params = new URLSearchParams({ tool: request.tool, agent_id: request.run.agent_id, status: "approved", limit: "100" });
    let page;
    try {
      page = await api(`/v1/requests?${params}`);
    } catch {
      return;
    }
    const since = Date.now() - 3600 * 1000;
    const same = page.items.filter(
      (r) => r.args_digest === request.args_digest && r.decisions.some((d) => d.decision === "approve" && d.by === me.sub && Date.parse(d.at) >= since),
    );
    if (same.length < 2 || !grant.select.isConnected || grant.select.value) return;
    grant.select.value = "identical";
    grant.sync();
    grant.field.before(
      h(
        "p",
        { class: "notice", dataset: { role: "grant-hint" } },
        `You approved this same call ${same.length} times in the last hour. Approving now also grants this agent's identical calls for an hour; choose "Only this call" to keep being asked.`,
      ),
    );
  }

  function actionsPanel(request) {
    const panel = h("section", { class: "panel", "aria-labelledby": "decide-title", id: "decide" }, h("h2", { id: "decide-title" }, "Decide"));
    const why = blocked(me, request);
    const mine = request.status === "pending" && approvedByMe(me, request);
    if (request.status !== "pending") {
      panel.append(h("p", {}, `This request is ${request.status}; there is nothing left to decide.`));
      return panel;
    }
    const disabled = Boolean(why) || mine;
    if (why) panel.append(h("p", { class: "notice", dataset: { role: "blocked" } }, why));
    if (mine) panel.append(h("p", { class: "muted" }, "You approved this; it waits for more approvals."));
    const status = h("div", { class: "decide-status", "aria-live": "polite" });

    // approve, and optionally grant (a standing grant: only where one approver decides)
    const note = h("input", { id: "approve-note", type: "text", autocomplete: "off", disabled });
    const grant = request.policy.quorum > 1 ? null : grantField(request, disabled);
    const approveForm = h(
      "form",
      { class: "decide-form", novalidate: true },
      h("div", { class: "field" }, h("label", { for: "approve-note" }, "Note (optional)"), note),
      grant ? grant.field : null,
      h("button", { type: "submit", class: "btn btn-approve btn-block", dataset: { action: "approve" }, disabled }, "Approve"),
    );
    approveForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const scope = grant?.select.value;
      const ttl = grant?.ttl.value ?? "1h";
      const asked = { reason: note.value.trim() || undefined, grant: scope ? { ttl, scope } : undefined };
      await send(status, () => decide(request, "approve", asked), scope ? `Approved, and granted for ${GRANT_TTLS[ttl]}` : "Approved");
    });
    if (grant && !disabled) suggestGrant(request, grant);

    // reject
    const reason = h("textarea", { id: "reject-reason", rows: 3, required: true, disabled, "aria-describedby": "reject-hint reject-error" });
    const rejectError = h("p", { class: "field-error", id: "reject-error", hidden: true });
    const rejectForm = h(
      "form",
      { class: "decide-form", novalidate: true },
      h(
        "div",
        { class: "field" },
        h("label", { for: "reject-reason" }, "Reason for rejecting (required)"),
        reason,
        h("span", { class: "hint", id: "reject-hint" }, "The agent's model is told this reason."),
        rejectError,
      ),
      h("button", { type: "submit", class: "btn btn-reject btn-block", dataset: { action: "reject" }, disabled }, "Reject"),
    );
    rejectForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!reason.value.trim()) {
        rejectError.textContent = "Give a reason: the agent's model is told why.";
        rejectError.hidden = false;
        reason.setAttribute("aria-invalid", "true");
        reason.focus();
        return;
      }
      rejectError.hidden = true;
      reason.removeAttribute("aria-invalid");
      await send(status, () => decide(request, "reject", { reason: reason.value.trim() }), "Rejected");
    });

    // what the policy lets approvers do (CONTRACT §9: approve, edit, reject, respond)
    const allowed = request.policy.decisions ?? ["approve", "edit", "reject", "respond"];
    panel.append(
      allowed.includes("approve") ? approveForm : null,
      allowed.includes("reject") ? rejectForm : null,
      allowed.includes("edit") ? editSection(request, disabled, status) : null,
      allowed.includes("respond") ? answerSection(request, disabled, status) : null,
      status,
    );
    return panel;
  }

  /** Answer in the tool's place: the tool does not run; the model receives the answer. */
  function answerSection(request, disabled, status) {
    const section = h("div", { class: "decide-form" });
    const open = h("button", { type: "button", class: "btn btn-block", dataset: { action: "answer" }, disabled, "aria-expanded": "false", "aria-controls": "answer-form" }, "Answer in the tool's place…");
    section.append(open);
    open.addEventListener("click", () => {
      open.hidden = true;
      open.setAttribute("aria-expanded", "true");
      const answer = h("textarea", { id: "answer-text", rows: 4, required: true, spellcheck: "false", "aria-describedby": "answer-hint answer-error" });
      const error = h("p", { class: "field-error", id: "answer-error", hidden: true });
      const note = h("input", { id: "answer-note", type: "text", autocomplete: "off" });
      const form = h(
        "form",
        { id: "answer-form", class: "decide-form", novalidate: true, "aria-label": "Answer in the tool's place" },
        h("h3", {}, "Answer in the tool's place"),
        h(
          "div",
          { class: "field" },
          h("label", { for: "answer-text" }, "The tool's result, as the agent will receive it"),
          answer,
          h("span", { class: "hint", id: "answer-hint" }, "JSON, or plain text. The tool does not run."),
          error,
        ),
        h("div", { class: "field" }, h("label", { for: "answer-note" }, "Note (optional)"), note),
        h("div", { class: "row" }, h("button", { type: "submit", class: "btn btn-primary", dataset: { action: "send-answer" } }, "Send answer"), " ", h("button", { type: "button", class: "btn btn-quiet", dataset: { action: "cancel-answer" } }, "Cancel")),
      );
      form.querySelector('[data-action="cancel-answer"]').addEventListener("click", () => {
        form.remove();
        open.hidden = false;
        open.setAttribute("aria-expanded", "false");
        open.focus();
      });
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const response = typedAnswer(answer.value);
        if (response === undefined) {
          error.textContent = "Write the answer the agent receives (null answers nothing).";
          error.hidden = false;
          answer.setAttribute("aria-invalid", "true");
          answer.focus();
          return;
        }
        error.hidden = true;
        answer.removeAttribute("aria-invalid");
        await send(status, () => decide(request, "respond", { response, reason: note.value.trim() || undefined }), "Answered in the tool's place");
      });
      section.append(form);
      answer.focus();
    });
    return section;
  }

  function editSection(request, disabled, status) {
    const section = h("div", { class: "decide-form" });
    if (!request.policy.editable.length) {
      section.append(h("p", { class: "muted" }, "This request's policy allows no changes to its arguments."));
      return section;
    }
    const open = h("button", { type: "button", class: "btn btn-block", dataset: { action: "edit" }, disabled, "aria-expanded": "false", "aria-controls": "edit-form" }, "Approve with changes…");
    section.append(open);
    open.addEventListener("click", () => {
      if (section.querySelector("#edit-form")) return;
      open.setAttribute("aria-expanded", "true");
      open.hidden = true;
      const { element, collect } = editFields(request);
      const form = h(
        "form",
        { id: "edit-form", class: "decide-form", novalidate: true, "aria-label": "Approve with changes" },
        h("h3", {}, "Approve with changes"),
        element,
        h("div", { class: "field" }, h("label", { for: "edit-note" }, "Note (optional)"), h("input", { id: "edit-note", type: "text", autocomplete: "off" })),
        h("div", { class: "row" }, h("button", { type: "submit", class: "btn btn-primary", dataset: { action: "review" } }, "Review changes"), " ", h("button", { type: "button", class: "btn btn-quiet", dataset: { action: "cancel-edit" } }, "Cancel")),
        h("div", { class: "review", "aria-live": "polite" }),
      );
      form.querySelector('[data-action="cancel-edit"]').addEventListener("click", () => {
        form.remove();
        open.hidden = false;
        open.setAttribute("aria-expanded", "false");
        open.focus();
      });
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const review = form.querySelector(".review");
        const { changes, errors } = collect();
        if (errors.length) {
          review.replaceChildren(h("p", { class: "error", role: "alert" }, "Fix the marked fields first."));
          errors[0].focus();
          return;
        }
        if (!Object.keys(changes).length) {
          review.replaceChildren(h("p", { class: "notice", role: "alert" }, "Nothing changed. Use Approve to approve as it is."));
          return;
        }
        const confirm = h("button", { type: "button", class: "btn btn-approve btn-block", dataset: { action: "confirm-edit" } }, "Confirm: approve with these changes");
        review.replaceChildren(h("h4", {}, "Check your changes"), diffTable(request.final_args, changes), confirm);
        confirm.addEventListener("click", async () => {
          const noteText = form.querySelector("#edit-note").value.trim() || undefined;
          await send(status, () => decide(request, "approve", { reason: noteText, modifiedArgs: changes }), "Approved with changes");
        });
        confirm.focus();
      });
      section.append(form);
      form.querySelector("input:not(:disabled), select:not(:disabled), textarea:not(:disabled)")?.focus();
    });
    return section;
  }

  async function send(status, action, done) {
    for (const button of view.querySelectorAll("#decide button")) button.disabled = true;
    status.replaceChildren(h("p", { class: "muted" }, "Sending…"));
    try {
      const updated = await action();
      render(updated, { force: true });
      const message = updated.status === "pending" ? "Your approval is recorded; it waits for more approvals." : `${done}.`;
      view.querySelector("#decide")?.append(h("p", { class: "success", role: "status" }, message));
      announce(message);
    } catch (error) {
      if (error.status === 409) {
        // decided elsewhere meanwhile: show how it stands now, with why this one failed
        try {
          current = await api(`/v1/requests/${encodeURIComponent(id)}`);
        } catch {
          /* keep what we have */
        }
      }
      render(current, { force: true });
      view.querySelector("#decide")?.append(h("p", { class: "error", role: "alert" }, errorText(error)));
    }
  }

  subscribe(
    (type, request) => {
      if (request.id === id) render(request);
    },
    { onResync: load },
  );
  await load();
  startClock();
}

function text(value) {
  if (value === undefined || value === null || value === "") return null;
  return typeof value === "string" ? value : JSON.stringify(value);
}

function changedFields(request) {
  const out = {};
  for (const [key, value] of Object.entries(request.final_args)) {
    if (JSON.stringify(request.args[key]) !== JSON.stringify(value)) out[key] = value;
  }
  return out;
}

/** What a person typed as a tool's answer: JSON where it parses, else the text itself;
 * undefined for nothing, or null (which answers nothing). As the server's channels read it. */
function typedAnswer(text) {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  try {
    const value = JSON.parse(trimmed);
    return value === null ? undefined : value;
  } catch {
    return trimmed;
  }
}

/** How long a grant made here may last (the API takes any time from a minute to a week). */
const GRANT_TTLS = { "15m": "15 minutes", "1h": "1 hour", "8h": "8 hours", "1d": "1 day", "7d": "7 days" };
