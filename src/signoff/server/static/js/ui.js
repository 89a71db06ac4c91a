// Small shared pieces: badges, countdowns, the risk and status words.

import { h } from "./dom.js";

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
