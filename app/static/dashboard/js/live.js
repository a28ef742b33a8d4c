// Live updates: one graphql-transport-ws connection (the graphql-ws client), one
// campaignEvents subscription. Every event's id is kept as the subscription's `after`, so
// when the network drops the client reconnects and resumes exactly after the last event
// it saw: the server replays what was missed, nothing is skipped or shown twice.

import { credential } from "./api.js";

export const LIVE_QUERY = `subscription DashboardLive($after: String) {
  campaignEvents(after: $after) {
    id
    type
    occurredAt
    campaign {
      id name status budget spent currency
      engagement { impressions clicks likes shares comments }
    }
  }
}`;

const STATES = {
  connecting: "Connecting…",
  live: "Live",
  offline: "Offline, reconnecting…",
  stopped: "Live updates stopped",
};

/** Dispatches "event" (detail: a CampaignEvent) and "resync" (events may have been missed:
 * views reload what they show). */
export const live = new EventTarget();

let client = null;
let dispose = null;
let payload = null;

function setState(state, detail) {
  const indicator = document.getElementById("live");
  indicator.dataset.state = state;
  indicator.textContent = detail ? `${STATES[state]} (${detail})` : STATES[state];
}

function websocketUrl() {
  const url = new URL("/graphql", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

function backoff(retries) {
  const base = Math.min(500 * 2 ** retries, 8000);
  return new Promise((resolve) => setTimeout(resolve, base / 2 + Math.random() * (base / 2)));
}

function subscribe() {
  dispose = client.subscribe(payload, {
    next(result) {
      const event = result.data && result.data.campaignEvents;
      if (!event) return;
      payload.variables.after = event.id; // what a reconnection resumes after
      const indicator = document.getElementById("live");
      indicator.dataset.lastEvent = event.id;
      indicator.dataset.received = String(Number(indicator.dataset.received || 0) + 1);
      live.dispatchEvent(new CustomEvent("event", { detail: event }));
    },
    error(error) {
      // The server refused the subscription (for example: the events after our cursor
      // are no longer kept). Start again from now and have the views reload.
      const message = Array.isArray(error) ? error.map((e) => e.message).join("; ") : "";
      setState("offline", message || "resubscribing");
      payload.variables.after = null;
      setTimeout(() => {
        live.dispatchEvent(new Event("resync"));
        subscribe();
      }, 1000);
    },
    complete() {},
  });
}

export function startLive() {
  if (client) return;
  setState("connecting");
  payload = { query: LIVE_QUERY, variables: { after: null } };
  client = window.graphqlWs.createClient({
    url: websocketUrl(),
    connectionParams: () => ({ Authorization: `Bearer ${credential.get()}` }),
    keepAlive: 10000,
    retryAttempts: Infinity,
    retryWait: backoff,
    shouldRetry: (closeEvent) => !(closeEvent && [4401, 4403].includes(closeEvent.code)),
    on: {
      connecting: () => setState("connecting"),
      connected: () => setState("live"),
      closed: (event) => {
        if (event && [4401, 4403].includes(event.code)) setState("stopped", event.reason);
        else setState("offline");
      },
    },
  });
  subscribe();
}

export function stopLive() {
  if (dispose) dispose();
  if (client) client.dispose();
  client = dispose = payload = null;
  setState("stopped");
}
