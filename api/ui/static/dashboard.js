// The dashboard's pages: sign in, the tenant's jobs, one job. Each page is static HTML
// naming itself in <body data-page>; everything shown comes from /v1 as text nodes.
import {
  $,
  ACTIVE,
  config,
  download,
  el,
  getJSON,
  getOnce,
  graphPage,
  graphPath,
  jobPath,
  number,
  onSubmit,
  poll,
  progressBar,
  report,
  request,
  requireSignIn,
  session,
  showImage,
  showMessage,
  statusBadge,
  timeCell,
} from "./api.js";
import { graphPage as graphView } from "./graph.js";
import { newJobPage } from "./newjob.js";
import { resultViews } from "./results.js";

async function header() {
  const auth = (await config()).auth;
  $("#session-state").textContent = auth ? "signed in" : "local mode (no API keys)";
  const out = $("#sign-out");
  out.hidden = !auth;
  out.addEventListener("click", () => {
    session.signOut("Signed out.");
    location.assign("/ui/signin");
  });
}

// ------------------------------------------------------------------------- sign in
async function signinPage() {
  const message = $("#signin-message");
  onSubmit($("#signin-form"), async () => {
    const key = $("#api-key").value.trim();
    try {
      await request("/v1/jobs?limit=1", { key });
    } catch (err) {
      const why = err.status === 401 ? "This API key was not accepted" : "Sign-in failed";
      return showMessage(message, `${why}: ${err.message}`);
    }
    session.signIn(key);
    const next = new URLSearchParams(location.search).get("next") || "";
    const inside = /^\/ui(\/[\w\-./%]*)?(\?[\w\-.%=&]*)?$/.test(next); // only back into /ui
    location.assign(inside ? next : "/ui");
  });
  if (!(await config()).auth) return location.replace("/ui");
  showMessage(message, session.takeNotice());
}

// ---------------------------------------------------------------------------- jobs
const PAGE_SIZE = 200;

/** offset/limit of page `page` (0: the newest) of `total` jobs, which /v1/jobs lists
 * oldest first. The newest page asks for a whole page, so that jobs submitted since the
 * last call come with it while they fit. */
function newestWindow(total, page) {
  const end = Math.max(total - page * PAGE_SIZE, 0);
  const offset = Math.max(end - PAGE_SIZE, 0);
  return { offset, limit: page === 0 ? PAGE_SIZE : Math.max(end - offset, 1) };
}

/** A link to a graph's page: its name when known (names: id -> name), else its id. */
function graphLink(id, names = new Map()) {
  const name = names.get(id);
  const label = name ? el("span", { text: name }) : el("code", { text: id });
  return el("a", { attrs: { href: graphPage(id), title: id } }, [label]);
}

/** The dataset's file name (its id as a tooltip), or its id while no name is known. */
function datasetLabel(id, names = new Map()) {
  const name = names.get(id);
  return name ? el("span", { text: name, attrs: { title: id } }) : el("code", { text: id });
}

/** id -> label of the tenant's last 1,000 graphs (their names) and datasets (their file
 * names), for labels only: ids of both kinds never collide (gr_..., ds_...). */
async function resourceNames() {
  const newest = async (path, field) => {
    const { total } = await getJSON(`${path}?limit=1`);
    const page = await getJSON(`${path}?limit=1000&offset=${Math.max(total - 1000, 0)}`);
    return page.items.filter((x) => x[field]).map((x) => [x.id, x[field]]);
  };
  const found = await Promise.all([
    newest("/v1/graphs", "name"),
    newest("/v1/datasets", "filename"),
  ]);
  return new Map(found.flat());
}

/** The job's status badge, and "×N" when it trains N replicas. */
function statusCell(job) {
  const replicas = job.spec?.replicas ?? 1;
  if (replicas <= 1) return statusBadge(job.status);
  const note = el("span", { text: ` ×${replicas}`, cls: "muted", attrs: { title: "replicas" } });
  return el("span", {}, [statusBadge(job.status), note]);
}

function jobCells(job, names) {
  const link = el("a", { text: job.id, attrs: { href: `/ui/jobs/${encodeURIComponent(job.id)}` } });
  const cancel = ACTIVE.has(job.status)
    ? [el("button", { text: "Cancel", attrs: { type: "button", "data-cancel": job.id } })]
    : [];
  const cells = [
    link,
    statusCell(job),
    progressBar(job.progress),
    timeCell(job.created_at),
    timeCell(job.started_at),
    timeCell(job.finished_at),
    graphLink(job.graph_id, names),
    datasetLabel(job.dataset_id, names),
    el("span", { text: job.device ?? "–" }),
  ];
  return [...cells.map((c) => el("td", {}, [c])), el("td", {}, cancel)];
}

async function jobsPage() {
  if (!(await requireSignIn())) return;
  header();
  const state = { status: "", page: 0, total: 0 };
  const rows = new Map(); // job id -> <tr>, kept while the job is on the page
  let names = new Map(); // graph and dataset id -> label, once resourceNames() has answered
  let shown = null; // the last page rendered
  const tbody = $("#jobs tbody");
  const error = $("#jobs-error");

  async function fetchPage() {
    const query = (w) => {
      const params = new URLSearchParams({ limit: w.limit, offset: w.offset });
      if (state.status) params.set("status", state.status);
      return `/v1/jobs?${params}`;
    };
    const wanted = newestWindow(state.total, state.page);
    let data = await getJSON(query(wanted));
    const window = newestWindow(data.total, state.page);
    if (window.offset !== wanted.offset || window.limit !== wanted.limit) {
      data = await getJSON(query(window)); // the total moved the page: one more call
    }
    state.total = data.total;
    return data;
  }

  function render(data) {
    shown = data;
    const items = data.items.slice().reverse(); // newest first
    const seen = new Set();
    const ordered = items.map((job) => {
      seen.add(job.id);
      let tr = rows.get(job.id);
      const signature = JSON.stringify(job);
      if (!tr) rows.set(job.id, (tr = el("tr", { attrs: { "data-job": job.id } })));
      if (tr.dataset.signature !== signature) {
        tr.dataset.signature = signature;
        tr.replaceChildren(...jobCells(job, names));
      }
      return tr;
    });
    for (const id of rows.keys()) if (!seen.has(id)) rows.delete(id);
    tbody.replaceChildren(...ordered);
    $("#jobs-empty").hidden = items.length > 0;
    const first = data.total - data.offset - data.items.length + 1;
    $("#jobs-summary").textContent = items.length
      ? `${first}–${first + items.length - 1} of ${data.total}, newest first · ` +
        `updated ${new Date().toLocaleTimeString()}`
      : "";
    $("#jobs-newer").disabled = state.page === 0;
    $("#jobs-older").disabled = data.offset === 0;
  }

  let first = true;
  async function refresh() {
    try {
      render(await fetchPage());
      showMessage(error, "");
      if (first) performance.mark("gsnn-edges:jobs-rendered");
      first = false;
    } catch (err) {
      report(error, err);
    }
  }

  $("#status-filter").addEventListener("change", (event) => {
    Object.assign(state, { status: event.target.value, page: 0, total: 0 });
    refresh();
  });
  $("#jobs-newer").addEventListener("click", () => {
    state.page = Math.max(state.page - 1, 0);
    refresh();
  });
  $("#jobs-older").addEventListener("click", () => {
    state.page += 1;
    refresh();
  });
  tbody.addEventListener("click", async (event) => {
    const id = event.target.closest("button[data-cancel]")?.dataset.cancel;
    if (!id || !confirm(`Cancel job ${id}?`)) return;
    try {
      await request(`${jobPath(id)}/cancel`, { method: "POST" });
    } catch (err) {
      report(error, err);
    }
    refresh();
  });
  poll(refresh);
  resourceNames() // names replace ids in the rows shown, without a call per row
    .then((found) => {
      names = found;
      for (const tr of rows.values()) tr.dataset.signature = "";
      if (shown) render(shown);
    })
    .catch((err) => report(error, err));
}

// ----------------------------------------------------------------------------- job
function jobFacts(job, names) {
  const facts = [
    ["Progress", progressBar(job.progress)],
    ["Created", timeCell(job.created_at)],
    ["Started", timeCell(job.started_at)],
    ["Finished", timeCell(job.finished_at)],
    ["Graph", graphLink(job.graph_id, names)],
    ["Dataset", datasetLabel(job.dataset_id, names)],
    ["Device", el("span", { text: job.device ?? "–" })],
    ["Attempts", el("span", { text: job.attempts })],
  ];
  const p = job.progress || {};
  if (p.stage) {
    // a confirmation on the workers counts its chunk jobs
    const chunks = p.confirm_chunks ? ` · ${p.confirm_chunks_done ?? 0} of ${p.confirm_chunks} chunks` : "";
    facts.push(["Stage", el("span", { text: p.stage + chunks })]);
  }
  for (const r of job.replicas ?? []) {
    const epoch = r.progress ? ` · epoch ${r.progress.epoch}/${r.progress.epochs}` : "";
    const state = el("span", { cls: "replica", attrs: { "data-replica": r.replica } }, [
      statusBadge(r.status),
      el("span", { text: epoch, cls: "muted" }),
    ]);
    facts.push([`Replica ${r.replica}`, state]);
  }
  if (p.train_loss != null) facts.push(["Train loss", number(p.train_loss)]);
  if (p.val_auc != null) facts.push(["Validation AUC", number(p.val_auc)]);
  if (p.best_epoch != null) facts.push(["Best epoch", el("span", { text: p.best_epoch })]);
  return facts.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", {}, [value])]);
}

function renderJob(job, names) {
  $("#job-id").textContent = job.id;
  $("#job-status").replaceWith(Object.assign(statusBadge(job.status), { id: "job-status" }));
  $("#job-facts").replaceChildren(...jobFacts(job, names));
  $("#job-cancel").hidden = !ACTIVE.has(job.status);
  $("#job-failure").hidden = !job.error;
  if (job.error) $("#job-error").textContent = `${job.error.type}: ${job.error.message}`;
  const spec = JSON.stringify(job.spec, null, 2);
  if ($("#job-spec").textContent !== spec) $("#job-spec").textContent = spec;
}

async function jobPage() {
  if (!(await requireSignIn())) return;
  header();
  const id = decodeURIComponent(location.pathname.split("/").pop());
  const message = $("#job-message");
  let plotted = null; // status and epoch the curves show
  const names = new Map(); // the job's graph id -> its name, once known
  let named = false;
  let results = false;
  $("#job-cancel").addEventListener("click", async () => {
    if (!confirm(`Cancel job ${id}?`)) return;
    await request(`${jobPath(id)}/cancel`, { method: "POST" }).catch((e) => report(message, e));
  });
  poll(async () => {
    let job;
    try {
      job = await getJSON(jobPath(id));
    } catch (err) {
      if (err.status === 404) {
        showMessage(message, `No job ${id} for this API key.`);
        return false;
      }
      report(message, err);
      return true; // keep polling through a passing outage
    }
    showMessage(message, "");
    renderJob(job, names);
    if (!named) {
      named = true; // the graph's name and the dataset's file name, once, in place of ids
      const dataset = `/v1/datasets/${encodeURIComponent(job.dataset_id)}`;
      Promise.all([getOnce(graphPath(job.graph_id)), getOnce(dataset)])
        .then(([graph, dataset]) => {
          if (graph.name) names.set(graph.id, graph.name);
          if (dataset.filename) names.set(dataset.id, dataset.filename);
          renderJob(job, names);
        })
        .catch((err) => report(message, err));
    }
    const shows = `${job.status}:${job.progress?.epoch ?? 0}`;
    if (shows !== plotted) {
      plotted = shows;
      showImage($("#history-plot"), `${jobPath(id)}/plots/history.svg`).catch((e) =>
        report(message, e),
      );
    }
    if (job.status === "succeeded" && !results) {
      results = true;
      resultsSection(id);
      resultViews(id, job.graph_id, message);
    }
    return ACTIVE.has(job.status);
  });
}

// ------------------------------------------------------------------ job: results
const EDGE_PAGE = 50;

function edgeCells(edge, rank) {
  const cells = [
    el("span", { text: rank }),
    el("span", { text: edge.src, cls: "node" }),
    el("span", { text: edge.dst, cls: "node" }),
    number(edge.score),
    number(edge.p_value),
    number(edge.q_value),
    number(edge.effect),
    number(edge.confirm_q_value),
    el("span", { text: edge.equivalents ?? "–" }),
    el("span", { text: edge.has_edge ? "yes" : "no" }),
  ];
  return cells.map((c) => el("td", {}, [c]));
}

/** The filter form as /edges query parameters (empty fields left out). */
function edgeFilters(form) {
  const params = new URLSearchParams();
  for (const name of ["src", "dst", "min_score", "max_q_value", "max_confirm_q_value"]) {
    const value = form.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  params.set("candidates_only", form.elements.candidates_only.checked);
  return params;
}

function resultsSection(id) {
  $("#results").hidden = false;
  const form = $("#edge-filters");
  const error = $("#edges-error");
  const state = { filters: edgeFilters(form), offset: 0, total: 0, candidates: null };

  async function load() {
    const params = new URLSearchParams(state.filters);
    params.set("limit", EDGE_PAGE);
    params.set("offset", state.offset);
    try {
      const page = await getJSON(`${jobPath(id)}/edges?${params}`);
      state.total = page.total;
      const rows = page.items.map((e, i) => el("tr", {}, edgeCells(e, state.offset + i + 1)));
      $("#edges tbody").replaceChildren(...rows);
      const last = state.offset + page.items.length;
      $("#edges-summary").textContent = page.total
        ? `${state.offset + 1}–${last} of ${page.total}`
        : "no pairs match";
      $("#edges-prev").disabled = state.offset === 0;
      $("#edges-next").disabled = last >= page.total;
      $("#edges-csv").textContent = `Download CSV (${page.total} rows)`;
      showMessage(error, "");
    } catch (err) {
      report(error, err);
    }
    const candidates = state.filters.get("candidates_only");
    if (candidates !== state.candidates) {
      state.candidates = candidates;
      const path = `${jobPath(id)}/plots/scores.svg?candidates_only=${candidates}`;
      showImage($("#scores-plot"), path).catch((e) => report(error, e));
    }
  }

  onSubmit(form, () => {
    Object.assign(state, { filters: edgeFilters(form), offset: 0 });
    load();
  });
  $("#edges-prev").addEventListener("click", () => {
    state.offset = Math.max(state.offset - EDGE_PAGE, 0);
    load();
  });
  $("#edges-next").addEventListener("click", () => {
    state.offset += EDGE_PAGE;
    load();
  });
  $("#edges-csv").addEventListener("click", () => {
    const params = new URLSearchParams(state.filters);
    params.set("format", "csv");
    download(`${jobPath(id)}/edges?${params}`, `${id}-edges.csv`).catch((e) => report(error, e));
  });
  load();
}

const pages = {
  signin: signinPage,
  jobs: jobsPage,
  job: jobPage,
  graph: () => requireSignIn().then((ok) => ok && (header(), graphView())),
  new: () => requireSignIn().then((ok) => ok && (header(), newJobPage())),
};
pages[document.body.dataset.page]?.();
