// The new-job page: a graph and a dataset (uploaded here or picked from earlier
// uploads), and the job spec in a form generated from the API's own JSON schema
// (JobCreate in /openapi.json): defaults filled in, bounds as input attributes. The
// server stays the authority: its 422 problems are shown next to the fields they name.
import {
  $,
  el,
  getJSON,
  onSubmit,
  parsePairs,
  postJSON,
  report,
  request,
  showMessage,
} from "./api.js";

const CHOSEN_ELSEWHERE = new Set(["graph_id", "dataset_id"]);

// ------------------------------------------------------------------ schema -> form
function resolver(doc) {
  return (schema) => (schema?.$ref ? doc.components.schemas[schema.$ref.split("/").pop()] : schema);
}

/** {schema, nullable}: the non-null branch of an `anyOf: [X, null]`. */
function unwrap(schema, resolve) {
  const branches = schema.anyOf || [schema];
  const real = branches.filter((b) => b.type !== "null").map(resolve);
  return {
    schema: { ...real[0], ...schema, anyOf: undefined },
    nullable: real.length < branches.length,
  };
}

const label = (path) => path.split(".").pop().replaceAll("_", " ");

function numberInput(path, s, nullable) {
  const attrs = { type: "number", name: path, id: `f-${path}` };
  attrs.step = s.type === "integer" ? "1" : "any";
  const safe = (v) => v !== undefined && Math.abs(v) <= Number.MAX_SAFE_INTEGER;
  if (safe(s.minimum)) attrs.min = s.minimum;
  if (safe(s.maximum)) attrs.max = s.maximum;
  if (s.type === "integer" && safe(s.exclusiveMinimum)) attrs.min = s.exclusiveMinimum + 1;
  if (s.type === "integer" && safe(s.exclusiveMaximum)) attrs.max = s.exclusiveMaximum - 1;
  if (!nullable) attrs.required = "";
  else attrs.placeholder = "not set";
  const input = el("input", { attrs });
  if (s.default !== undefined && s.default !== null) input.value = String(s.default);
  if (s.type === "number") {
    // exclusive bounds have no input attribute: a custom validity message instead
    const check = () => {
      const v = input.valueAsNumber;
      let why = "";
      if (s.exclusiveMinimum !== undefined && v <= s.exclusiveMinimum)
        why = `must be > ${s.exclusiveMinimum}`;
      if (s.exclusiveMaximum !== undefined && v >= s.exclusiveMaximum)
        why = `must be < ${s.exclusiveMaximum}`;
      input.setCustomValidity(Number.isNaN(v) ? "" : why);
    };
    input.addEventListener("input", check);
    check();
  }
  input.dataset.kind = s.type;
  return input;
}

function control(path, s, nullable, resolve) {
  if (s.type === "boolean") {
    const box = el("input", { attrs: { type: "checkbox", name: path, id: `f-${path}` } });
    box.checked = Boolean(s.default);
    box.dataset.kind = "boolean";
    return box;
  }
  if (s.enum) {
    const select = el(
      "select",
      { attrs: { name: path, id: `f-${path}` } },
      s.enum.map((v) => el("option", { text: v })),
    );
    if (s.default !== undefined) select.value = s.default;
    select.dataset.kind = "string";
    return select;
  }
  if (s.type === "integer" || s.type === "number") return numberInput(path, s, nullable);
  const items = resolve(s.items || {});
  if (s.type === "array" && items.enum) {
    const group = el("span", {
      cls: "choices",
      attrs: { id: `f-${path}`, "data-kind": "choices", "data-name": path },
    });
    for (const v of items.enum) {
      const box = el("input", { attrs: { type: "checkbox", value: v, name: path } });
      box.checked = (s.default || []).includes(v);
      group.append(el("label", { cls: "check" }, [box, el("span", { text: v })]));
    }
    group.dataset.min = s.minItems ?? 0;
    return group;
  }
  if (s.type === "array") {
    const area = el("textarea", {
      attrs: {
        name: path,
        id: `f-${path}`,
        rows: 3,
        placeholder: "src -> dst (one pair per line)",
      },
    });
    area.dataset.kind = "pairs";
    return area;
  }
  const input = el("input", { attrs: { name: path, id: `f-${path}` } });
  input.dataset.kind = "string";
  return input;
}

function field(path, prop, resolve) {
  const { schema, nullable } = unwrap(prop, resolve);
  const input = control(path, schema, nullable, resolve);
  const shown = schema.default === undefined ? "" : ` (default ${JSON.stringify(schema.default)})`;
  return el("div", { cls: "field", attrs: { "data-field": path } }, [
    el("label", { text: label(path), attrs: { for: input.id } }),
    input,
    el("small", { text: `${schema.description || ""}${shown}`, cls: "muted" }),
    el("small", { cls: "field-error", attrs: { role: "alert" } }),
  ]);
}

/** The spec form of JobCreate: one fieldset per block, top-level fields in "job". */
function specForm(doc) {
  const resolve = resolver(doc);
  const root = doc.components.schemas.JobCreate;
  const loose = [];
  const sets = [];
  for (const [name, prop] of Object.entries(root.properties)) {
    if (CHOSEN_ELSEWHERE.has(name)) continue;
    const block = resolve(prop);
    if (prop.$ref && block.properties) {
      const fields = Object.entries(block.properties).map(([k, p]) =>
        field(`${name}.${k}`, p, resolve),
      );
      const legend = el("legend", { text: name, attrs: { title: prop.description || "" } });
      const about = el("p", { text: prop.description || block.description || "", cls: "muted" });
      const problem = el("p", { cls: "field-error", attrs: { role: "alert" } });
      sets.push(
        el("fieldset", { attrs: { "data-block": name } }, [legend, about, problem, ...fields]),
      );
    } else {
      loose.push(field(name, prop, resolve));
    }
  }
  if (loose.length) sets.push(el("fieldset", {}, [el("legend", { text: "job" }), ...loose]));
  return sets;
}

// ------------------------------------------------------------------ form -> body
function pairsOf(text, path) {
  try {
    return parsePairs(text);
  } catch (err) {
    throw new FieldError(path, err.message);
  }
}

class FieldError extends Error {
  constructor(path, message) {
    super(message);
    this.path = path;
  }
}

function setPath(body, path, value) {
  const keys = path.split(".");
  let node = body;
  for (const k of keys.slice(0, -1)) node = node[k] ??= {};
  node[keys.at(-1)] = value;
}

/** The spec as a request body (fields left empty are left out: the server's defaults). */
function specBody(container) {
  const body = {};
  for (const node of container.querySelectorAll("[data-kind]")) {
    const path = node.dataset.name || node.name;
    let value;
    switch (node.dataset.kind) {
      case "boolean":
        value = node.checked;
        break;
      case "integer":
      case "number":
        value = node.value === "" ? undefined : Number(node.value);
        break;
      case "choices":
        value = [...node.querySelectorAll("input:checked")].map((b) => b.value);
        if (value.length < Number(node.dataset.min)) {
          throw new FieldError(path, `choose at least ${node.dataset.min}`);
        }
        break;
      case "pairs":
        value = pairsOf(node.value, path);
        break;
      default:
        value = node.value || undefined;
    }
    if (value !== undefined) setPath(body, path, value);
  }
  return body;
}

function clearFieldErrors() {
  for (const node of document.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of document.querySelectorAll("[aria-invalid]"))
    node.removeAttribute("aria-invalid");
}

/** Show a problem's [{loc, msg}] next to the fields they name; true if any was placed. */
function showFieldErrors(errors) {
  let placed = false;
  for (const { loc, msg } of errors) {
    const path = (loc || []).filter((k) => k !== "body" && typeof k === "string").join(".");
    const field = document.querySelector(`[data-field="${CSS.escape(path)}"]`);
    const block = document.querySelector(`[data-block="${CSS.escape(path)}"]`);
    const box = field || block;
    if (!box) continue;
    box.querySelector(".field-error").textContent = msg;
    if (field) field.querySelector("[name], [data-name]").setAttribute("aria-invalid", "true");
    else block.setAttribute("aria-invalid", "true");
    placed = true;
  }
  return placed;
}

// ------------------------------------------------------------------ graph and dataset
const source = (name) => document.querySelector(`input[name="${name}-source"]:checked`).value;

function toggleSources(name) {
  for (const block of document.querySelectorAll(`#${name}-choice [data-source]`)) {
    block.hidden = block.dataset.source !== source(name);
  }
}

async function fillGraphs(select, wanted) {
  const first = await getJSON("/v1/graphs?limit=1");
  const offset = Math.max(first.total - 1000, 0);
  const page = await getJSON(`/v1/graphs?limit=1000&offset=${offset}`);
  const options = page.items.reverse().map((g) =>
    el("option", {
      text: `${g.name || "(unnamed)"} · ${g.id} · ${g.counts.function} function nodes`,
      attrs: { value: g.id },
    }),
  );
  select.replaceChildren(...options);
  if (wanted && page.items.some((g) => g.id === wanted)) select.value = wanted;
  return page.items.length;
}

async function fillDatasets(select, graphId) {
  if (!graphId) return select.replaceChildren();
  const page = await getJSON(
    `/v1/datasets?${new URLSearchParams({ graph_id: graphId, limit: 1000 })}`,
  );
  select.replaceChildren(
    ...page.items
      .reverse()
      .map((d) =>
        el("option", {
          text: `${d.filename ?? d.id} · ${d.n_samples} samples`,
          attrs: { value: d.id },
        }),
      ),
  );
}

const fileKey = (file) => `${file.name}:${file.size}:${file.lastModified}`;

/** Uploads done on this page, by file, so that a resubmission after an error of the
 * job itself does not upload the same graph or dataset twice. */
const uploaded = new Map();

async function graphId(progress) {
  if (source("graph") === "existing") {
    const id = $("#graph-select").value;
    if (!id) throw new Error("No graph chosen: upload one, or pick one of the list.");
    return id;
  }
  const file = $("#graph-file").files[0];
  if (!file) throw new Error("Choose a graph JSON file to upload.");
  const key = `graph:${fileKey(file)}:${$("#graph-name").value}`;
  if (uploaded.has(key)) return uploaded.get(key);
  let content;
  try {
    content = JSON.parse(await file.text());
  } catch (err) {
    throw new Error(`${file.name} is not JSON: ${err.message}`);
  }
  if (content === null || typeof content !== "object" || Array.isArray(content)) {
    throw new Error(`${file.name} must hold a JSON object with "nodes" and "edges".`);
  }
  const name = $("#graph-name").value.trim();
  progress.textContent = `Uploading graph ${file.name}…`;
  const graph = await postJSON("/v1/graphs", name ? { ...content, name } : content);
  uploaded.set(key, graph.id);
  return graph.id;
}

async function datasetId(graph, progress) {
  if (source("dataset") === "existing") {
    const id = $("#dataset-select").value;
    if (!id) throw new Error("No dataset chosen: upload one, or pick one of the chosen graph's.");
    return id;
  }
  const file = $("#dataset-file").files[0];
  if (!file) throw new Error("Choose a CSV or Parquet file to upload.");
  const key = `dataset:${graph}:${fileKey(file)}`;
  if (uploaded.has(key)) return uploaded.get(key);
  const form = new FormData();
  form.append("graph_id", graph);
  form.append("file", file, file.name);
  progress.textContent = `Uploading dataset ${file.name}…`;
  const dataset = await (await request("/v1/datasets", { method: "POST", body: form })).json();
  uploaded.set(key, dataset.id);
  return dataset.id;
}

// ------------------------------------------------------------------ page
export async function newJobPage() {
  const message = $("#new-job-message");
  const progress = $("#new-job-progress");
  const form = $("#new-job");
  let doc;
  try {
    doc = await getJSON("/openapi.json");
  } catch (err) {
    return report(message, err);
  }
  $("#spec-form").replaceChildren(...specForm(doc));

  const wanted = new URLSearchParams(location.search).get("graph_id");
  const graphs = await fillGraphs($("#graph-select"), wanted).catch((e) => report(message, e));
  if (wanted || !graphs) {
    document.querySelector(
      `input[name="graph-source"][value="${graphs ? "existing" : "upload"}"]`,
    ).checked = true;
  }
  const refreshDatasets = () =>
    fillDatasets(
      $("#dataset-select"),
      source("graph") === "existing" ? $("#graph-select").value : "",
    ).catch((e) => report(message, e));
  for (const name of ["graph", "dataset"]) {
    for (const radio of document.querySelectorAll(`input[name="${name}-source"]`)) {
      radio.addEventListener("change", () => {
        toggleSources(name);
        refreshDatasets();
      });
    }
    toggleSources(name);
  }
  $("#graph-select").addEventListener("change", refreshDatasets);
  refreshDatasets();

  onSubmit(form, async () => {
    clearFieldErrors();
    showMessage(message, "");
    if (!form.reportValidity()) return;
    const button = $("#new-job-submit");
    button.disabled = true;
    try {
      const spec = specBody($("#spec-form"));
      const graph = await graphId(progress);
      const dataset = await datasetId(graph, progress);
      progress.textContent = "Submitting the job…";
      const job = await postJSON("/v1/jobs", { graph_id: graph, dataset_id: dataset, ...spec });
      location.assign(`/ui/jobs/${encodeURIComponent(job.id)}`);
    } catch (err) {
      progress.textContent = "";
      if (err instanceof FieldError) {
        showFieldErrors([{ loc: err.path.split("."), msg: err.message }]);
        showMessage(message, `${err.path}: ${err.message}`);
      } else {
        showFieldErrors(err.errors || []);
        report(message, err);
      }
    } finally {
      button.disabled = false;
    }
  });
}
