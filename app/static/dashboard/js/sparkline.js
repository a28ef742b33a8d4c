// A small uPlot line of daily engagement: no axes, no legend, no cursor. Its numbers are
// also given in words (aria-label and title) for screen readers and for a hover.

import { count, h } from "./dom.js";

export const DAYS = 14;

/** [from, to) covering the last ``DAYS`` days, today included, as the metrics field takes. */
export function window14() {
  const to = new Date();
  to.setUTCHours(0, 0, 0, 0);
  to.setUTCDate(to.getUTCDate() + 1);
  const from = new Date(to);
  from.setUTCDate(from.getUTCDate() - DAYS);
  return { from: from.toISOString(), to: to.toISOString() };
}

export function sparkline(points, { width = 120, height = 32 } = {}) {
  const values = points.map((p) => p.engagement);
  const total = values.reduce((a, b) => a + b, 0);
  const peak = Math.max(0, ...values);
  const label = `Engagement over the last ${points.length} days: ${count(total)} in all, at most ${count(peak)} a day`;
  const box = h("div", { class: "spark", role: "img", "aria-label": label, title: label });
  box.style.width = `${width}px`; // CSSOM, which the page's CSP allows (style attributes it does not)
  box.style.height = `${height}px`;
  if (!points.length || typeof window.uPlot !== "function") return box;
  const xs = points.map((p) => Date.parse(p.at) / 1000);
  const options = {
    width,
    height,
    pxAlign: false,
    cursor: { show: false },
    legend: { show: false },
    select: { show: false },
    scales: { x: { time: false }, y: { range: [0, Math.max(1, peak)] } },
    axes: [{ show: false }, { show: false }],
    series: [{}, { stroke: "#2563eb", width: 1.5, fill: "rgba(37, 99, 235, 0.12)", points: { show: false } }],
  };
  // uPlot measures nothing while detached; it draws on its own canvas of the given size.
  new window.uPlot(options, [xs, values], box);
  return box;
}
