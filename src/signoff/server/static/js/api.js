// The JSON API with the session cookie; every change carries the page's CSRF token.

const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? "";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `The server answered ${status}.`);
    this.status = status;
    this.problem = problem;
  }
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { detail: "The server cannot be reached. Check the connection and try again." });
  }
  if (response.status === 401) {
    // the session ended (expired or signed out elsewhere): sign in again
    window.location.assign("/login");
    throw new ApiError(401, { detail: "Your session has ended. Sign in again." });
  }
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

let mine = null;

/** Who is signed in: {sub, kind, role, roles, auditor, name, server_time}. */
export function whoAmI() {
  mine ??= api("/v1/me");
  return mine;
}

// A decision counts for the arguments the approver was shown: each one carries the
// request's args_digest as the page drew it, and the server refuses it (409) if another
// approver has changed the arguments since.
export function decide(request, decision, { reason, modifiedArgs, grant, response } = {}) {
  const body = { decision, seen_digest: request.args_digest };
  if (reason) body.reason = reason;
  if (response !== undefined) body.response = response;
  if (grant) body.grant = grant;
  if (modifiedArgs && Object.keys(modifiedArgs).length) body.modified_args = modifiedArgs;
  return api(`/v1/requests/${encodeURIComponent(request.id)}/decisions`, { method: "POST", body });
}

export function decideMany(requests, decision, reason) {
  const body = {
    ids: requests.map((r) => r.id),
    decision,
    seen_digests: Object.fromEntries(requests.map((r) => [r.id, r.args_digest])),
  };
  if (reason) body.reason = reason;
  return api("/v1/decisions", { method: "POST", body });
}

function rank(me, role) {
  return me.roles.indexOf(role);
}

/** Why ``me`` cannot decide ``request`` now, or null when they can. */
export function blocked(me, request) {
  if (me.kind !== "approver") return "Only approvers decide requests.";
  if (request.status !== "pending") return `This request is ${request.status}.`;
  const needed = request.policy.min_role;
  if (rank(me, me.role) < 0 || rank(me, me.role) < rank(me, needed)) {
    return `Needs the role ${needed} or higher; you are ${me.role ?? "without a role"}.`;
  }
  if (request.requested_by === me.sub && !request.policy.allow_self_approval) {
    return "You made this request, so someone else must decide it.";
  }
  return null;
}

/** Whether ``me`` has already approved the request's current arguments (quorum > 1). */
export function approvedByMe(me, request) {
  return request.decisions.some(
    (d) => d.decision === "approve" && d.by === me.sub && d.args_digest === request.args_digest,
  );
}

export function approvalsOf(request) {
  const by = new Set();
  for (const d of request.decisions) {
    if (d.decision === "approve" && d.args_digest === request.args_digest) by.add(d.by);
  }
  return [...by];
}

// How far a request has come: a copy read earlier never replaces one read later, whichever
// arrives first (a page fetch and a live event can cross on the way).
export function progress(request) {
  const terminal = request.status === "pending" ? 0 : 10;
  const escalated = request.escalations?.length ?? 0;
  return terminal + request.decisions.length + escalated + (request.consumed_at ? 1 : 0) + (request.outcome ? 1 : 0);
}
