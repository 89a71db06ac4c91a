// Small shared pieces: badges, countdowns, the risk and status words.

import { h } from "./dom.js";
import { when } from "./time.js";

export function riskBadge(risk) {
  return h("span", { class: `badge risk-${risk}` }, h("span", { class: "visually-hidden" }, "Risk: "), risk);
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, dataset: { role: "status-badge" } }, status);
}

export function expiresIn(request) {
  if (request.status !== "pending") return h("span", {}, "—");
  return h("time", {
    class: "countdown",
    datetime: request.expires_at,
    dataset: { expiresAt: request.expires_at },
  }, "…");
}

export function age(iso) {
  return h("time", { datetime: iso, dataset: { since: iso } }, "…");
}

export function errorText(error) {
  if (error?.problem?.detail) return error.problem.detail;
  return error?.message || "Something went wrong.";
}

export function jsonText(value) {
  return value === undefined ? "—" : JSON.stringify(value);
}

/** The escalation steps that fired, as list items: which step, when, to which channels. */
export function escalationLines(request) {
  return (request.escalations ?? []).map((e) =>
    h("li", { dataset: { step: String(e.step) } }, `Step ${e.step} fired ${when(e.at)}: notified `, e.notify.length ? e.notify.join(", ") : "no channel"),
  );
}

/** A data table: the first cell of each row is its header; numbers align right. */
export function table(headers, rows) {
  const numeric = (value) => typeof value === "number";
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data" },
      h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell, i) => (i === 0 ? h("th", { scope: "row" }, cell) : h("td", { class: numeric(cell) ? "num" : null }, cell)))))),
    ),
  );
}
