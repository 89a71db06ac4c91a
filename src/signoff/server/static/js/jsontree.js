// Arguments as a tree: objects and arrays fold (details/summary, so the keyboard works),
// leaves show their type by colour and by form (strings quoted).

import { h } from "./dom.js";

const OPEN_DEPTH = 3;

function leaf(value) {
  if (value === null) return h("span", { class: "json-null" }, "null");
  switch (typeof value) {
    case "string":
      return h("span", { class: "json-string" }, JSON.stringify(value));
    case "number":
      return h("span", { class: "json-number" }, String(value));
    case "boolean":
      return h("span", { class: "json-boolean" }, String(value));
    default:
      return h("span", {}, JSON.stringify(value));
  }
}

function node(key, value, depth) {
  const label = key === null ? null : h("span", { class: "json-key" }, `${key}: `);
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    const size = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
    if (!entries.length) return h("li", {}, label, h("span", { class: "json-meta" }, Array.isArray(value) ? "[]" : "{}"));
    return h(
      "li",
      {},
      h(
        "details",
        { open: depth < OPEN_DEPTH },
        h("summary", {}, label, h("span", { class: "json-meta" }, size)),
        h("ul", {}, entries.map(([k, v]) => node(k, v, depth + 1))),
      ),
    );
  }
  return h("li", {}, label, leaf(value));
}

export function jsonTree(value, label) {
  const entries = value && typeof value === "object" ? Object.entries(value) : [];
  if (!entries.length) return h("p", { class: "muted" }, "No arguments.");
  return h("ul", { class: "json-tree", "aria-label": label }, entries.map(([k, v]) => node(k, v, 1)));
}
