// The dashboard's entry: signs in (the demo tenant by itself in development, else a token
// or an API key kept for this tab only), routes between the views, starts live updates.

import { credential, demoSignIn } from "./api.js";
import { h, show } from "./dom.js";
import { startInspector } from "./inspector.js";
import { startLive, stopLive } from "./live.js";
import { campaignView } from "./views/campaign.js";
import { campaignsView } from "./views/campaigns.js";
import { searchView } from "./views/search.js";

const main = document.getElementById("main");
let leave = () => {};

function signInView(reason) {
  stopLive();
  const input = h("input", { id: "credential", type: "password", autocomplete: "off", required: true, "aria-describedby": "credential-help" });
  const form = h(
    "form",
    { class: "sign-in" },
    h("h1", {}, "Sign in"),
    reason ? h("p", { class: "error", role: "alert" }, reason) : null,
    h("label", { for: "credential" }, "Token or API key"),
    input,
    h("p", { id: "credential-help", class: "muted" }, "Kept in this tab only, until it is closed or you sign out. `chimera token` or `chimera apikey create` make one."),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    credential.set(input.value);
    route();
  });
  leave();
  leave = () => {};
  show(main, form);
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  input.focus();
}

function whoFromToken(token) {
  if (token.startsWith("chk_")) return "API key";
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return `${claims.tenant} · ${claims.role}`;
  } catch {
    return "";
  }
}

function route() {
  const token = credential.get();
  if (!token) {
    signInView();
    return;
  }
  document.getElementById("who").textContent = whoFromToken(token);
  document.getElementById("sign-out").hidden = false;
  startLive();
  const [path, query = ""] = window.location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean);
  leave();
  document.title = "Chimera · Campaigns";
  let view = "campaigns";
  if (parts[0] === "campaign" && parts[1]) {
    view = "campaign";
    leave = campaignView(main, decodeURIComponent(parts[1]));
  } else if (parts[0] === "search") {
    view = "search";
    document.title = "Chimera · Search";
    leave = searchView(main, params);
  } else {
    leave = campaignsView(main, params);
  }
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function start() {
  startInspector();
  document.getElementById("sign-out").addEventListener("click", () => {
    credential.clear();
    signInView("Signed out.");
  });
  window.addEventListener("chimera:sign-in", (e) => signInView(e.detail));
  window.addEventListener("hashchange", route);
  if (!credential.get()) {
    const token = await demoSignIn();
    if (token) credential.set(token);
  }
  route();
}

start();
