// The dashboard's side of the /v1 API: the API key (this tab's sessionStorage only,
// never in a URL), authenticated fetches, problem+json errors, authenticated images and
// downloads, polling, and DOM building that puts data in text nodes only.

const KEY = "gsnn-edges.api-key";
const NOTICE = "gsnn-edges.signin-notice";

export const session = {
  key: () => sessionStorage.getItem(KEY),
  signIn(key) {
    sessionStorage.setItem(KEY, key);
  },
  signOut(notice) {
    sessionStorage.removeItem(KEY);
    if (notice) sessionStorage.setItem(NOTICE, notice);
  },
  takeNotice() {
    const notice = sessionStorage.getItem(NOTICE);
    sessionStorage.removeItem(NOTICE);
    return notice;
  },
};

let configured;
/** {auth, heatmap_max_nodes, drawing_max_nodes}: whether the server wants an API key
 * (false: embedded mode, no sign-in) and the largest W / graph it draws. */
export function config() {
  configured ??= fetch("/ui/config").then((r) => r.json());
  return configured;
}

/** Handles `form`'s submissions in the page, then enables its submit buttons. Every page
 * ships them disabled: a submission before its handler is attached would be the browser's
 * own GET, which puts the fields (an API key among them) in the URL and the history. */
export function onSubmit(form, handler) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    handler(event);
  });
  for (const button of form.querySelectorAll("button[type=submit]")) button.disabled = false;
}

export class ApiError extends Error {
  /** errors: the problem's [{loc, msg}] (validation problems), else []. */
  constructor(status, detail, errors = []) {
    super(`${detail} (HTTP ${status})`);
    this.status = status;
    this.detail = detail;
    this.errors = errors;
  }
}

/** fetch() with the signed-in key as a bearer token; non-2xx throws an ApiError.
 * `body`: a FormData (multipart upload) or any other value, sent as JSON. */
export async function request(path, { method = "GET", key = session.key(), body } = {}) {
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const init = { method, headers, cache: "no-store" };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (!resp.ok) {
    let detail = resp.statusText;
    let errors = [];
    try {
      const problem = await resp.json();
      detail = problem.detail || detail;
      errors = Array.isArray(problem.errors) ? problem.errors : [];
    } catch {
      // not problem+json: keep the status text
    }
    throw new ApiError(resp.status, detail, errors);
  }
  return resp;
}

export const getJSON = async (path) => (await request(path)).json();

const fetched = new Map();
/** getJSON(path) once per page: the same promise to every caller (a failure is not kept). */
export function getOnce(path) {
  if (!fetched.has(path)) {
    const promise = getJSON(path);
    promise.catch(() => fetched.delete(path));
    fetched.set(path, promise);
  }
  return fetched.get(path);
}
export const postJSON = async (path, body) =>
  (await request(path, { method: "POST", body })).json();

export const signinPath = () =>
  `/ui/signin?next=${encodeURIComponent(location.pathname + location.search)}`;

/** Whether the page may load: the server needs no key, or this tab has one. */
export async function requireSignIn() {
  if ((await config()).auth && !session.key()) {
    location.replace(signinPath());
    return false;
  }
  return true;
}

/** A 401 after sign-in means the key no longer works: back to the sign-in page. */
export function handleAuthError(err) {
  if (err.status !== 401) return false;
  session.signOut(`Your API key was refused: ${err.detail}. Sign in again.`);
  location.assign(signinPath());
  return true;
}

/** Call fn now and every ms while the tab is visible, until it returns false. */
export function poll(fn, ms = 2000) {
  const tick = async () => {
    const again = document.hidden ? true : await fn();
    if (again !== false) setTimeout(tick, ms);
  };
  tick();
}

/** Show an SVG the API renders (an <img> cannot send the auth header: fetch it);
 * `options` as for request() (a POST with a body). */
export async function showImage(img, path, options = {}) {
  const blob = await (await request(path, options)).blob();
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob);
}

/** Save what path answers as a file (a plain link cannot send the auth header). */
export async function download(path, filename) {
  const url = URL.createObjectURL(await (await request(path)).blob());
  const link = el("a", { attrs: { href: url, download: filename } });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** An element with text (always a text node, never parsed as HTML) and attributes. */
export function el(tag, { text, cls, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

export const $ = (selector) => document.querySelector(selector);

export function showMessage(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

// ------------------------------------------------------------------ job presentation
export const ACTIVE = new Set(["queued", "running"]);
const STATUSES = new Set(["queued", "running", "succeeded", "failed", "cancelled"]);

export function statusBadge(status) {
  const known = STATUSES.has(status) ? status : "unknown";
  return el("span", { text: status, cls: `badge status-${known}` });
}

export function progressBar(progress) {
  const { epoch, epochs } = progress || {};
  if (!epochs) return el("span", { text: "–", cls: "muted" });
  const bar = el("progress", { attrs: { max: epochs, value: epoch || 0 } });
  return el("span", { cls: "progress" }, [bar, el("span", { text: `${epoch || 0}/${epochs}` })]);
}

export function timeCell(iso) {
  if (!iso) return el("span", { text: "–", cls: "muted" });
  return el("time", { text: new Date(iso).toLocaleString(), attrs: { datetime: iso, title: iso } });
}

export function number(value) {
  if (value === null || value === undefined) return el("span", { text: "–", cls: "muted" });
  const abs = Math.abs(value);
  const text =
    abs !== 0 && (abs < 1e-3 || abs >= 1e6) ? value.toExponential(2) : value.toPrecision(4);
  return el("span", { text: String(Number(text)), attrs: { title: String(value) } });
}

export const jobPath = (id) => `/v1/jobs/${encodeURIComponent(id)}`;
export const graphPath = (id) => `/v1/graphs/${encodeURIComponent(id)}`;
export const graphPage = (id) => `/ui/graphs/${encodeURIComponent(id)}`;

/** What to do with an error of a /v1 call: 401 signs out, anything else is shown. */
export function report(node, err) {
  if (!handleAuthError(err)) showMessage(node, err.message);
}

/** A node name shortened for a drawing (the whole name goes in its tooltip). */
export const shortName = (name, max = 18) =>
  name.length <= max ? name : `${name.slice(0, max - 1)}…`;

const PAIR = / -> |\t/; // "src -> dst" or "src<TAB>dst"

/** Edges typed one per line as "src -> dst" (or tab-separated) -> [[src, dst], ...];
 * undefined when there is none. Throws an Error naming the first bad line. */
export function parsePairs(text) {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  if (!lines.length) return undefined;
  return lines.map((line, i) => {
    const parts = line.split(PAIR);
    if (parts.length !== 2) throw new Error(`line ${i + 1}: write "src -> dst"`);
    return parts.map((p) => p.trim());
  });
}
