// One campaign: its numbers, its agents and their tasks, its media (with upload), the
// campaigns most like it, and what changed recently. One query; live events for this
// campaign reload it.

import { failedAt, graphql } from "../api.js";
import { count, h, money, show, showFailure, statusBadge, when } from "../dom.js";
import { live } from "../live.js";
import { sparkline, window14 } from "../sparkline.js";

export const DETAIL_QUERY = `query DashboardCampaign($id: ID!, $from: DateTime!, $to: DateTime!) {
  campaign(id: $id) {
    id name goal status budget spent remainingBudget currency startsAt endsAt
    engagement { impressions clicks likes shares comments }
    metrics(from: $from, to: $to, bucket: DAY) { at engagement spend }
    agents(first: 50) {
      totalCount
      edges { node { id name persona status activeTasks queuedTasks } }
    }
    media(first: 24) {
      totalCount
      edges { node { id kind filename contentType sizeBytes status url createdAt } }
    }
    similar(limit: 5) { score campaign { id name status } }
    history(first: 10) {
      edges { node { id actor action occurredAt changes { field before after } } }
    }
  }
}`;

const REQUEST_UPLOAD = `mutation DashboardRequestUpload($input: RequestMediaUploadInput!) {
  requestMediaUpload(input: $input) {
    asset { id }
    uploadUrl uploadMethod
    uploadHeaders { name value }
  }
}`;

const COMPLETE_UPLOAD = `mutation DashboardCompleteUpload($id: ID!) {
  completeMediaUpload(input: { id: $id }) { asset { id status } }
}`;

function section(title, ...content) {
  const id = `section-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return h("section", { class: "panel", "aria-labelledby": id }, h("h2", { id }, title), ...content);
}

function unavailable(what) {
  return h("p", { class: "unavailable" }, `${what} unavailable right now.`);
}

function numbers(campaign, errors) {
  const engagement = campaign.engagement;
  return h(
    "dl",
    { class: "figures" },
    h("dt", {}, "Budget"),
    h("dd", {}, money(campaign.budget, campaign.currency)),
    h("dt", {}, "Spent"),
    h("dd", {}, money(campaign.spent, campaign.currency)),
    h("dt", {}, "Remaining"),
    h("dd", {}, money(campaign.remainingBudget, campaign.currency)),
    ["impressions", "clicks", "likes", "shares", "comments"].map((kind) => [
      h("dt", {}, kind),
      h(
        "dd",
        { dataset: { counter: kind } },
        engagement ? count(engagement[kind]) : failedAt(errors, "campaign", "engagement") ? "unavailable" : "–",
      ),
    ]),
  );
}

function agentsList(agents) {
  if (!agents.edges.length) return h("p", { class: "empty" }, "No agents assigned.");
  return h(
    "ul",
    { class: "agents" },
    agents.edges.map(({ node: agent }) =>
      h(
        "li",
        {},
        h("strong", {}, agent.name),
        " ",
        statusBadge(agent.status),
        h("span", { class: "muted" }, ` ${agent.persona}`),
        h(
          "span",
          { class: "tasks" },
          agent.activeTasks === null ? "tasks unavailable" : `${agent.activeTasks} running, ${agent.queuedTasks} queued`,
        ),
      ),
    ),
  );
}

function gallery(media) {
  if (!media.edges.length) return h("p", { class: "empty" }, "No media yet.");
  return h(
    "ul",
    { class: "gallery" },
    media.edges.map(({ node: asset }) =>
      h(
        "li",
        { dataset: { id: asset.id, status: asset.status } },
        asset.kind === "IMAGE" && asset.url
          ? h("img", { src: asset.url, alt: asset.filename, loading: "lazy", width: 160, height: 120 })
          : h("span", { class: "thumb-kind" }, asset.status === "READY" ? asset.kind.toLowerCase() : "pending"),
        h("span", { class: "caption" }, asset.filename),
      ),
    ),
  );
}

function put(url, method, headers, file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(method, url);
    for (const header of headers) request.setRequestHeader(header.name, header.value);
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    request.addEventListener("load", () =>
      request.status < 300 ? resolve() : reject(new Error(`The object store refused the upload (${request.status}).`)),
    );
    request.addEventListener("error", () => reject(new Error("The upload was interrupted.")));
    request.send(file);
  });
}

function uploader(campaignId, onDone) {
  const input = h("input", { id: "upload-file", type: "file", accept: "image/*,video/*" });
  const progress = h("progress", { id: "upload-progress", max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
  const message = h("p", { id: "upload-message", role: "status" });
  input.addEventListener("change", async () => {
    const file = input.files[0];
    if (!file) return;
    progress.hidden = false;
    progress.value = 0;
    message.textContent = `Uploading ${file.name}…`;
    try {
      const { data } = await graphql(REQUEST_UPLOAD, {
        input: { campaignId, filename: file.name, contentType: file.type || "application/octet-stream", sizeBytes: file.size },
      });
      const ticket = data.requestMediaUpload;
      await put(ticket.uploadUrl, ticket.uploadMethod, ticket.uploadHeaders, file, (share) => (progress.value = share));
      const done = await graphql(COMPLETE_UPLOAD, { id: ticket.asset.id });
      message.textContent = `${file.name} uploaded (${done.data.completeMediaUpload.asset.status.toLowerCase()}).`;
      input.value = "";
      onDone();
    } catch (error) {
      message.textContent = `Upload failed: ${error.message}`;
    } finally {
      progress.hidden = true;
    }
  });
  return h("div", { class: "uploader" }, h("label", { for: "upload-file" }, "Upload an image or a video"), input, progress, message);
}

function similarList(similar) {
  if (!similar.length) return h("p", { class: "empty" }, "Nothing similar yet (campaigns are indexed moments after they change).");
  return h(
    "ol",
    { class: "similar" },
    similar.map((hit) =>
      h("li", {}, h("a", { href: `#/campaign/${encodeURIComponent(hit.campaign.id)}` }, hit.campaign.name), " ", h("span", { class: "score" }, score(hit.score))),
    ),
  );
}

function score(value) {
  return (Math.abs(value) < 0.005 ? 0 : value).toFixed(2); // never "-0.00"
}

function changeText(change) {
  const value = (v) => (v === null || v === undefined ? "∅" : typeof v === "object" ? JSON.stringify(v) : String(v));
  return `${change.field}: ${value(change.before)} → ${value(change.after)}`;
}

function historyList(history) {
  if (!history.edges.length) return h("p", { class: "empty" }, "No recorded changes.");
  return h(
    "ol",
    { class: "history" },
    history.edges.map(({ node: entry }) =>
      h(
        "li",
        {},
        h("time", { datetime: entry.occurredAt }, when(entry.occurredAt)),
        ` ${entry.action} by ${entry.actor}`,
        entry.changes.length ? h("span", { class: "muted" }, ` (${entry.changes.slice(0, 3).map(changeText).join(", ")})`) : null,
      ),
    ),
  );
}

export function campaignView(main, id) {
  const body = h("div", { id: "campaign-detail", "aria-busy": "true" });
  // One uploader for the view's life: a reload of the campaign (after the upload, or on a
  // live event) keeps its progress and its last message.
  const upload = uploader(id, () => load());
  show(main, h("p", {}, h("a", { href: "#/" }, "← All campaigns")), body);
  let generation = 0;
  let timer = null;

  async function load() {
    const mine = ++generation;
    try {
      const { data, errors } = await graphql(DETAIL_QUERY, { id, ...window14() });
      if (mine !== generation) return;
      render(data.campaign, errors);
    } catch (error) {
      if (mine !== generation) return;
      showFailure(body, error);
    } finally {
      if (mine === generation) body.setAttribute("aria-busy", "false");
    }
  }

  function render(campaign, errors) {
    if (!campaign) {
      show(body, h("h1", {}, "Campaign not found"), h("p", { class: "empty" }, "It was deleted, or it belongs to another tenant."));
      body.dataset.state = "empty";
      return;
    }
    document.title = `${campaign.name} · Chimera`;
    show(
      body,
      h("h1", {}, campaign.name, " ", statusBadge(campaign.status)),
      h("p", { class: "goal" }, campaign.goal),
      h(
        "div",
        { class: "grid" },
        section("Numbers", numbers(campaign, errors), campaign.metrics ? sparkline(campaign.metrics, { width: 280, height: 60 }) : unavailable("Daily engagement")),
        section("Agents", campaign.agents ? agentsList(campaign.agents) : unavailable("Agents")),
        section("Media", campaign.media ? gallery(campaign.media) : unavailable("Media"), upload),
        section("Similar campaigns", campaign.similar ? similarList(campaign.similar) : unavailable("Similar campaigns")),
        section("Recent history", campaign.history ? historyList(campaign.history) : unavailable("History")),
      ),
    );
    body.dataset.state = "ready";
  }

  const onEvent = (e) => {
    if (e.detail.campaign && e.detail.campaign.id === id) {
      clearTimeout(timer);
      timer = setTimeout(load, 300);
    }
  };
  live.addEventListener("event", onEvent);
  live.addEventListener("resync", load);
  load();
  return () => {
    generation++;
    clearTimeout(timer);
    live.removeEventListener("event", onEvent);
    live.removeEventListener("resync", load);
  };
}
