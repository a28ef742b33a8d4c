// The tenant's campaigns: one query per page (every store joined by the server), then kept
// current by the live events without another request, except for a campaign this page
// has not seen (it reloads the page once things settle).

import { failedAt, graphql } from "../api.js";
import { count, h, money, show, showFailure, statusBadge } from "../dom.js";
import { live } from "../live.js";
import { sparkline, window14 } from "../sparkline.js";

export const PAGE_SIZE = 20;
const STATUSES = ["DRAFT", "ACTIVE", "PAUSED", "COMPLETED", "ARCHIVED"];

export const LIST_QUERY = `query DashboardCampaigns($first: Int!, $after: String, $filter: CampaignFilter, $from: DateTime!, $to: DateTime!) {
  campaigns(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      node {
        id name status budget spent currency
        engagement { impressions clicks likes shares comments }
        metrics(from: $from, to: $to, bucket: DAY) { at engagement }
        agents(first: 0) { totalCount }
        media(first: 1) { edges { node { id kind status filename url } } }
      }
    }
  }
}`;

function engagementCell(engagement, unavailable) {
  if (!engagement) {
    return h("td", { class: "engagement unavailable", "data-label": "Engagement" }, unavailable ? "unavailable" : "–");
  }
  return h(
    "td",
    { class: "engagement", "data-label": "Engagement" },
    h(
      "dl",
      { class: "counters" },
      ["impressions", "clicks", "likes", "shares", "comments"].map((kind) =>
        h("div", {}, h("dt", {}, kind), h("dd", { dataset: { counter: kind } }, count(engagement[kind]))),
      ),
    ),
  );
}

function budgetCell(campaign) {
  const spent = Number(campaign.spent);
  const budget = Number(campaign.budget);
  const share = budget > 0 ? Math.min(100, Math.round((spent / budget) * 100)) : 0;
  return h(
    "td",
    { class: "budget", "data-label": "Spent of budget" },
    h(
      "div",
      {},
      h("span", { class: "spent" }, money(campaign.spent, campaign.currency)),
      " of ",
      money(campaign.budget, campaign.currency),
      h("progress", { max: 100, value: share, "aria-label": `${share}% of the budget spent` }),
    ),
  );
}

function thumbnail(campaign) {
  const first = campaign.media && campaign.media.edges[0] && campaign.media.edges[0].node;
  if (!first) return h("span", { class: "muted" }, "no media");
  if (first.kind === "IMAGE" && first.url) {
    return h("img", { class: "thumb", src: first.url, alt: first.filename, loading: "lazy", width: 48, height: 48 });
  }
  return h("span", { class: "thumb-kind" }, first.status === "READY" ? first.kind.toLowerCase() : "uploading");
}

function row(campaign, index, errors) {
  const unavailable = failedAt(errors, "campaigns", "edges", index, "node", "engagement");
  return h(
    "tr",
    { dataset: { id: campaign.id } },
    h(
      "th",
      { scope: "row", "data-label": "Campaign" },
      h(
        "div",
        {},
        h("a", { href: `#/campaign/${encodeURIComponent(campaign.id)}` }, campaign.name),
        " ",
        h("span", { class: "status" }, statusBadge(campaign.status)),
      ),
    ),
    budgetCell(campaign),
    engagementCell(campaign.engagement, unavailable),
    h("td", { class: "trend", "data-label": "Last 14 days" }, campaign.metrics ? sparkline(campaign.metrics) : h("span", { class: "muted" }, "unavailable")),
    h("td", { class: "num", "data-label": "Agents" }, campaign.agents ? campaign.agents.totalCount : "–"),
    h("td", { class: "media", "data-label": "Media" }, thumbnail(campaign)),
  );
}

/** Apply a live event to the row of its campaign; false when this page does not show it. */
function applyEvent(table, event) {
  const campaign = event.campaign;
  if (!campaign) return true;
  const tr = table.querySelector(`tr[data-id="${CSS.escape(campaign.id)}"]`);
  if (!tr) return false;
  tr.querySelector(".status").replaceChildren(statusBadge(campaign.status));
  tr.querySelector("td.budget").replaceWith(budgetCell(campaign));
  if (campaign.engagement) tr.querySelector("td.engagement").replaceWith(engagementCell(campaign.engagement, false));
  tr.dataset.updated = event.id;
  return true;
}

export function campaignsView(main, params) {
  const state = {
    search: params.get("q") || "",
    status: params.get("status") || "",
    cursors: [null], // the `after` of each page seen, to go back
  };
  const searchBox = h("input", { id: "campaign-search", type: "search", value: state.search, placeholder: "Name contains…", autocomplete: "off" });
  const statusSelect = h(
    "select",
    { id: "campaign-status" },
    h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === state.status }, s.toLowerCase())),
  );
  const filters = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter campaigns" },
    h("label", { for: "campaign-search" }, "Search by name"),
    searchBox,
    h("label", { for: "campaign-status" }, "Status"),
    statusSelect,
  );
  const results = h("div", { id: "campaign-results", "aria-busy": "true" });
  show(main, h("h1", {}, "Campaigns"), filters, results);

  let generation = 0;
  let reloadTimer = null;

  async function load() {
    const mine = ++generation;
    results.setAttribute("aria-busy", "true");
    const filter = {};
    if (state.search.trim()) filter.search = state.search.trim();
    if (state.status) filter.status = [state.status];
    const after = state.cursors[state.cursors.length - 1];
    try {
      const { data, errors } = await graphql(LIST_QUERY, { first: PAGE_SIZE, after, filter, ...window14() });
      if (mine !== generation) return;
      render(data.campaigns, errors);
    } catch (error) {
      if (mine !== generation) return;
      showFailure(results, error);
    } finally {
      if (mine === generation) results.setAttribute("aria-busy", "false");
    }
  }

  function render(connection, errors) {
    if (!connection.edges.length) {
      const filtered = state.search || state.status;
      show(
        results,
        h("p", { class: "empty" }, filtered ? "No campaign matches these filters." : "No campaigns yet. Create one with the createCampaign mutation, or `chimera seed`."),
      );
      results.dataset.state = "empty";
      return;
    }
    const table = h(
      "table",
      { class: "campaigns" },
      h("caption", {}, `${connection.totalCount} campaign${connection.totalCount === 1 ? "" : "s"}`),
      h(
        "thead",
        {},
        h("tr", {}, ["Campaign", "Spent of budget", "Engagement", "Last 14 days", "Agents", "Media"].map((t) => h("th", { scope: "col" }, t))),
      ),
      h("tbody", {}, connection.edges.map((edge, i) => row(edge.node, i, errors))),
    );
    const page = state.cursors.length;
    const pager = h(
      "nav",
      { class: "pager", "aria-label": "Pages" },
      h("button", { type: "button", disabled: page === 1, onclick: () => { state.cursors.pop(); load(); } }, "Previous"),
      h("span", {}, `Page ${page}`),
      h("button", { type: "button", disabled: !connection.pageInfo.hasNextPage, onclick: () => { state.cursors.push(connection.pageInfo.endCursor); load(); } }, "Next"),
    );
    const storeErrors = errors.filter((e) => !(e.path || []).includes("engagement"));
    show(
      results,
      storeErrors.length ? h("p", { class: "warning", role: "status" }, `Some parts are unavailable: ${storeErrors[0].message}`) : null,
      table,
      pager,
    );
    results.dataset.state = "ready";
  }

  function reloadSoon() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 400);
  }

  let typing = null;
  searchBox.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      state.search = searchBox.value;
      state.cursors = [null];
      load();
    }, 250);
  });
  statusSelect.addEventListener("change", () => {
    state.status = statusSelect.value;
    state.cursors = [null];
    load();
  });
  filters.addEventListener("submit", (e) => e.preventDefault());

  const onEvent = (e) => {
    const table = results.querySelector("table.campaigns");
    const shown = table !== null && applyEvent(table, e.detail);
    // A new campaign, or one that may have entered or left the filtered page: reload. An
    // engagement event of a campaign on another page changes nothing here.
    const type = e.detail.type;
    if (
      type === "CREATED" ||
      (type === "STATUS_CHANGED" && state.status) ||
      (type === "UPDATED" && state.search) ||
      (!table && type !== "ENGAGEMENT")
    ) {
      reloadSoon();
    } else if (shown) {
      results.dataset.lastEvent = e.detail.id;
    }
  };
  live.addEventListener("event", onEvent);
  live.addEventListener("resync", reloadSoon);
  load();
  return () => {
    generation++;
    clearTimeout(reloadTimer);
    live.removeEventListener("event", onEvent);
    live.removeEventListener("resync", reloadSoon);
  };
}
