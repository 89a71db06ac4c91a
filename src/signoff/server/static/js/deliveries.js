// The outbox, for the highest role: what was sent to which channel, how many attempts it
// took, why the last one failed, and a Retry button for the failed ones. Retrying goes
// through the same endpoint as the API and the CLI (POST /v1/deliveries/{id}/retry), with
// the page's CSRF token like every other change the dashboard makes.

import { api, whoAmI } from "./api.js";
import { $, announce, h, show } from "./dom.js";
import { setServerTime, when } from "./time.js";
import { errorText } from "./ui.js";

const PAGE_SIZE = 50;

export async function deliveriesPage() {
  const me = await whoAmI();
  setServerTime(me.server_time);
  const list = $("#deliveries");
  const form = $("#delivery-filters");
  const error = $("#deliveries-error");
  const more = $("#deliveries-more");
  if (!me.auditor) {
    // the listing names the operator's channels and their errors: the API refuses it
    // below the highest role, so say so rather than show an error
    list.setAttribute("aria-busy", "false");
    $("#deliveries-access").replaceChildren(
      h("p", { class: "notice", dataset: { role: "needs-role" } }, `The deliveries need the highest role (${me.roles.at(-1)}); you are ${me.role ?? "without a role"}.`),
    );
    return;
  }
  show(form, true);
  let before = null;
  let generation = 0;

  function filters() {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    for (const [k, v] of new FormData(form).entries()) if (String(v).trim()) params.set(k, String(v).trim());
    return params;
  }

  async function load({ older = false } = {}) {
    const mine = ++generation;
    const params = filters();
    if (older && before !== null) params.set("before", String(before));
    list.setAttribute("aria-busy", "true");
    try {
      const page = await api(`/v1/deliveries?${params}`);
      if (mine !== generation) return; // a newer load (other filters) has started
      if (!older) list.replaceChildren();
      for (const delivery of page.items) list.append(entry(delivery));
      before = page.next_before;
      show(more, before !== null);
      show(error, false);
    } catch (failure) {
      error.textContent = errorText(failure);
      show(error, true);
    } finally {
      list.setAttribute("aria-busy", "false");
      show($("#deliveries-empty"), list.children.length === 0);
    }
  }

  function entry(delivery) {
    const li = h(
      "li",
      { class: "card history-entry", dataset: { id: delivery.id, status: delivery.status } },
      h(
        "div",
        { class: "card-title" },
        h("strong", {}, delivery.channel),
        h("span", { class: `badge delivery-${delivery.status}`, dataset: { role: "delivery-status" } }, delivery.status),
        h("span", {}, delivery.type, delivery.step ? ` (step ${delivery.step})` : ""),
        h("a", { href: `/requests/${encodeURIComponent(delivery.request_id)}`, class: "mono" }, delivery.request_id),
      ),
      h(
        "p",
        { class: "history-meta" },
        h("span", {}, "Attempts: ", h("strong", { dataset: { role: "attempts" } }, String(delivery.attempts))),
        h("span", {}, "Created: ", when(delivery.created_at)),
        delivery.status === "delivered"
          ? h("span", {}, "Delivered: ", when(delivery.delivered_at))
          : delivery.status === "pending" ? h("span", {}, "Next try: ", when(delivery.due_at)) : null,
        h("span", {}, "Id: ", h("code", {}, delivery.id)),
      ),
      delivery.last_error ? h("p", { class: "delivery-error", dataset: { role: "last-error" } }, "Last error: ", delivery.last_error) : null,
    );
    if (delivery.status === "failed") {
      const button = h("button", { type: "button", class: "btn btn-small", "aria-label": `Retry the delivery to ${delivery.channel} of ${delivery.type}` }, "Retry");
      const status = h("span", { role: "status" });
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          const retried = await api(`/v1/deliveries/${encodeURIComponent(delivery.id)}/retry`, { method: "POST" });
          const replaced = entry(retried);
          li.replaceWith(replaced);
          announce(`Retrying the delivery to ${delivery.channel}.`);
          replaced.querySelector("a")?.focus();
        } catch (failure) {
          button.disabled = false;
          status.replaceChildren(h("span", { class: "error" }, errorText(failure)));
        }
      });
      li.append(h("p", { class: "row" }, button, " ", status));
    }
    return li;
  }

  let typing = null;
  form.addEventListener("input", () => {
    window.clearTimeout(typing);
    typing = window.setTimeout(() => load(), 250);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  more.addEventListener("click", () => load({ older: true }));
  await load();
}
