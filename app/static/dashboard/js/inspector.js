// "Query and store plan of this view": the GraphQL document the view ran and the store
// calls the server made for it (extensions.plan, asked for with X-Chimera-Plan).

import { h, show } from "./dom.js";
import { onRequest } from "./api.js";

function planTable(plan) {
  if (!plan) return h("p", { class: "muted" }, "The server gave no plan for this request.");
  const rows = plan.steps.map((step, i) =>
    h(
      "tr",
      {},
      h("td", {}, i + 1),
      h("td", {}, step.store),
      h("td", {}, step.loader),
      h("td", { class: "num" }, step.keys),
      h("td", { class: "num" }, step.returned),
      h("td", { class: "num" }, step.servedCalls),
      h("td", { class: "num" }, step.durationMs.toFixed(1)),
    ),
  );
  return [
    h("p", {}, `${plan.storeCalls} store calls for the whole view.`),
    h(
      "table",
      { class: "plan" },
      h("caption", { class: "visually-hidden" }, "Store calls in order"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["#", "Store", "Loader", "Keys", "Returned", "Resolver calls served", "ms"].map((t) =>
            h("th", { scope: "col" }, t),
          ),
        ),
      ),
      h("tbody", {}, rows),
    ),
  ];
}

export function startInspector() {
  const query = document.getElementById("inspector-query");
  const plan = document.getElementById("inspector-plan");
  onRequest((request) => {
    if (request.query.trimStart().startsWith("mutation")) return; // views only
    const variables = JSON.stringify(request.variables, null, 2);
    query.textContent = `${request.query.trim()}\n\n# variables\n${variables}`;
    show(plan, planTable(request.plan));
  });
}
