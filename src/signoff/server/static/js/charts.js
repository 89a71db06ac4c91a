// Small charts without a library. Bars are plain elements sized from script (CSSOM, which
// the Content-Security-Policy allows, unlike inline style attributes), so labels stay
// readable at any width; the per-day columns are an SVG stretched to fit. Each chart has a
// text alternative, and the numbers are in a table beside it.

import { h, svg } from "./dom.js";

/** Horizontal bars: one row per item, one bar per series. */
export function barChart({ title, rows, series, max, format }) {
  const top = max || Math.max(1e-9, ...rows.flatMap((r) => series.map((s) => r[s.key] ?? 0)));
  const described = rows
    .map((r) => `${r.label}: ${series.map((s) => `${s.name} ${format(r[s.key])}`).join(", ")}`)
    .join("; ");
  return h(
    "div",
    { class: "bars", role: "img", "aria-label": `${title}. ${described || "No data."}` },
    rows.map((row) =>
      h(
        "div",
        { class: "bars-row", "aria-hidden": "true" },
        h("span", { class: "bars-label", title: row.label }, row.label),
        h(
          "span",
          { class: "bars-track" },
          series.map((s) => {
            const bar = h("span", { class: `bar ${s.cls}` });
            const value = row[s.key];
            bar.style.width = value === null || value === undefined ? "0" : `${Math.max(0.5, (value / top) * 100)}%`;
            return bar;
          }),
        ),
        h("span", { class: "bars-value" }, series.map((s) => format(row[s.key])).join(" / ")),
      ),
    ),
  );
}

/** Columns per day: approved and rejected decisions stacked. */
export function dayChart({ title, days }) {
  const height = 100;
  const width = Math.max(1, days.length) * 10;
  const top = Math.max(1, ...days.map((d) => d.decisions));
  const chart = svg("svg", {
    class: "columns",
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "none",
    "aria-hidden": "true",
  });
  days.forEach((d, i) => {
    const approvedH = (d.approved / top) * height;
    const rejectedH = ((d.decisions - d.approved) / top) * height;
    chart.append(svg("rect", { x: i * 10 + 1, y: height - approvedH, width: 8, height: approvedH, class: "bar-rate" }));
    chart.append(svg("rect", { x: i * 10 + 1, y: height - approvedH - rejectedH, width: 8, height: rejectedH, class: "bar-rejected" }));
  });
  const busiest = days.reduce((a, d) => (d.decisions > (a?.decisions ?? -1) ? d : a), null);
  const summary = days.filter((d) => d.decisions).map((d) => `${d.day}: ${d.approved} approved, ${d.decisions - d.approved} rejected`).join("; ");
  return h(
    "figure",
    { class: "columns-figure", role: "img", "aria-label": `${title}. ${summary || "No decisions."}` },
    chart,
    h(
      "figcaption",
      { class: "columns-axis", "aria-hidden": "true" },
      h("span", {}, days[0]?.day ?? ""),
      busiest && busiest.decisions ? h("span", {}, `busiest: ${busiest.day}, ${busiest.decisions} decisions`) : h("span", {}, ""),
      h("span", {}, days.at(-1)?.day ?? ""),
    ),
  );
}
