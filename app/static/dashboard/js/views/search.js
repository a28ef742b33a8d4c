// Semantic search across campaigns, agents, media and memories: the closest in meaning,
// best first, with their scores.

import { graphql } from "../api.js";
import { h, show, showFailure, statusBadge } from "../dom.js";

export const SEARCH_QUERY = `query DashboardSearch($query: String!) {
  semanticSearch(query: $query, limit: 20) {
    score
    node {
      __typename
      ... on Campaign { id name status }
      ... on Agent { id name persona }
      ... on MediaAsset { id filename kind campaign { id name } }
      ... on AgentMemory { id text agent { id name } }
    }
  }
}`;

function describe(node) {
  switch (node.__typename) {
    case "Campaign":
      return [h("a", { href: `#/campaign/${encodeURIComponent(node.id)}` }, node.name), " ", statusBadge(node.status)];
    case "Agent":
      return [h("strong", {}, node.name), h("span", { class: "muted" }, ` ${node.persona}`)];
    case "MediaAsset":
      return [
        h("strong", {}, node.filename),
        node.campaign ? [" in ", h("a", { href: `#/campaign/${encodeURIComponent(node.campaign.id)}` }, node.campaign.name)] : null,
      ];
    case "AgentMemory":
      return [h("q", {}, node.text), node.agent ? h("span", { class: "muted" }, ` (${node.agent.name})`) : null];
    default:
      return node.__typename;
  }
}

const KIND = { Campaign: "campaign", Agent: "agent", MediaAsset: "media", AgentMemory: "memory" };

export function searchView(main, params) {
  const input = h("input", { id: "semantic-query", type: "search", value: params.get("q") || "", required: true, autocomplete: "off" });
  const results = h("div", { id: "search-results" });
  const form = h(
    "form",
    { class: "search", role: "search", "aria-label": "Semantic search" },
    h("label", { for: "semantic-query" }, "Find by meaning across campaigns, agents, media and memories"),
    h("div", { class: "row" }, input, h("button", { type: "submit" }, "Search")),
  );
  show(main, h("h1", {}, "Search"), form, results);
  let generation = 0;

  async function run(text) {
    const mine = ++generation;
    results.setAttribute("aria-busy", "true");
    try {
      const { data } = await graphql(SEARCH_QUERY, { query: text });
      if (mine !== generation) return;
      const hits = data.semanticSearch;
      if (!hits.length) {
        show(results, h("p", { class: "empty" }, `Nothing matches “${text}”.`));
        results.dataset.state = "empty";
        return;
      }
      show(
        results,
        h(
          "ol",
          { class: "hits" },
          hits.map((hit) =>
            h("li", {}, h("span", { class: "kind" }, KIND[hit.node.__typename] || ""), h("span", { class: "what" }, describe(hit.node)), h("span", { class: "score", title: "similarity" }, hit.score.toFixed(3))),
          ),
        ),
      );
      results.dataset.state = "ready";
    } catch (error) {
      if (mine !== generation) return;
      showFailure(results, error);
    } finally {
      if (mine === generation) results.setAttribute("aria-busy", "false");
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    history.replaceState(null, "", `#/search?q=${encodeURIComponent(text)}`);
    run(text);
  });
  if (input.value.trim()) run(input.value.trim());
  else input.focus();
  return () => {
    generation++;
  };
}
