// GraphQL over HTTP with the tab's credential, and what the last view's query cost in store
// calls (the inspector shows it). Each view is one POST /graphql.

const TOKEN_KEY = "chimera.token";

/** No credential, or one the server no longer accepts: the page asks for another. */
export class SignInNeeded extends Error {
  constructor(message) {
    super(message);
    this.name = "SignInNeeded";
    window.dispatchEvent(new CustomEvent("chimera:sign-in", { detail: message }));
  }
}

/** Errors GraphQL answered with, in words; ``codes`` lets a view tell kinds apart. */
export class GraphQLFailure extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join("; "));
    this.errors = errors;
    this.codes = new Set(errors.map((e) => e.extensions && e.extensions.code).filter(Boolean));
  }
}

export const credential = {
  get() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token) {
    sessionStorage.setItem(TOKEN_KEY, token.trim().replace(/^Bearer\s+/i, ""));
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** The demo tenant's token, which the app hands to a browser on its own machine in
 * development; null anywhere else. */
export async function demoSignIn() {
  try {
    const response = await fetch("/dashboard/session", { method: "POST" });
    if (!response.ok) return null;
    const body = await response.json();
    return body.token || null;
  } catch {
    return null;
  }
}

const listeners = new Set();
/** Called with {query, variables, plan} after each view's request. */
export function onRequest(listener) {
  listeners.add(listener);
}

/** Run ``query``; resolves to {data, errors} (partial data is kept: a store that is down
 * takes only its own fields), rejects when nothing usable came back. */
export async function graphql(query, variables = {}) {
  const token = credential.get();
  if (!token) throw new SignInNeeded("Sign in to see your campaigns.");
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        Authorization: `Bearer ${token}`,
        "X-Chimera-Plan": "1",
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new Error("The Chimera service cannot be reached. Is it running?");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`The service answered ${response.status} without a GraphQL result.`);
  }
  const errors = body.errors || [];
  for (const listener of listeners) {
    listener({ query, variables, plan: body.extensions && body.extensions.plan });
  }
  if (errors.some((e) => e.extensions && e.extensions.code === "UNAUTHENTICATED")) {
    credential.clear();
    throw new SignInNeeded(
      "Your sign-in is no longer valid (expired or revoked). Sign in again with a token or an API key.",
    );
  }
  if (!body.data) throw new GraphQLFailure(errors.length ? errors : [{ message: "No data." }]);
  return { data: body.data, errors };
}

/** Whether an error of ``errors`` concerns the field at ``path`` (or below it). */
export function failedAt(errors, ...path) {
  return errors.some(
    (e) => Array.isArray(e.path) && path.every((part, i) => part === "*" || e.path[i] === part),
  );
}
