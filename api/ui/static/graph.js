// The graph page: node and edge counts per type, a degree summary, a drawing when the
// graph is small enough for the server to draw, and the datasets uploaded for it.
import {
  $,
  config,
  el,
  getJSON,
  graphPath,
  number,
  report,
  showImage,
  showMessage,
  timeCell,
} from "./api.js";

const STATS = ["min", "median", "mean", "max"];
const row = (cells) =>
  el(
    "tr",
    {},
    cells.map((c) => el("td", {}, [c])),
  );
const text = (value) => el("span", { text: value });

function counts(graph, degrees) {
  $("#node-counts tbody").replaceChildren(
    ...Object.entries(degrees.types).map(([type, d]) =>
      row([text(type), text(d.nodes), text(d.isolated)]),
    ),
  );
  $("#edge-counts tbody").replaceChildren(
    ...Object.entries(graph.counts.edges).map(([type, n]) =>
      row([text(type.replace("_", " → ")), text(n)]),
    ),
  );
  $("#degrees tbody").replaceChildren(
    ...Object.entries(degrees.types).map(([type, d]) =>
      row([
        text(type),
        ...STATS.map((s) => number(d.in[s])),
        ...STATS.map((s) => number(d.out[s])),
      ]),
    ),
  );
  $("#hubs tbody").replaceChildren(
    ...degrees.hubs.map((h) =>
      row([el("span", { text: h.name, cls: "node" }), text(h.type), text(h.in), text(h.out)]),
    ),
  );
}

async function drawingView(id, graph) {
  const limit = (await config()).drawing_max_nodes;
  const total = graph.counts.input + graph.counts.function + graph.counts.output;
  if (total > limit) {
    $("#drawing-note").textContent =
      `${total.toLocaleString()} nodes: drawn only up to ${limit} nodes.`;
    return;
  }
  $("#drawing-note").textContent =
    "Inputs left, function nodes by level, outputs right; hover a node for its name.";
  $("#graph-plot").hidden = false;
  await showImage($("#graph-plot"), `${graphPath(id)}/plots/graph.svg`);
}

async function datasets(id) {
  const page = await getJSON(`/v1/datasets?${new URLSearchParams({ graph_id: id, limit: 1000 })}`);
  $("#datasets tbody").replaceChildren(
    ...page.items.map((d) =>
      row([
        el("code", { text: d.id }),
        text(d.filename ?? ""),
        text(d.n_samples),
        timeCell(d.created_at),
      ]),
    ),
  );
  $("#datasets-empty").hidden = page.items.length > 0;
}

export async function graphPage() {
  const id = decodeURIComponent(location.pathname.split("/").pop());
  const message = $("#graph-message");
  $("#graph-id").textContent = id;
  $("#graph-new-job").href = `/ui/new?${new URLSearchParams({ graph_id: id })}`;
  let graph;
  let degrees;
  try {
    [graph, degrees] = await Promise.all([
      getJSON(graphPath(id)),
      getJSON(`${graphPath(id)}/degrees`),
    ]);
  } catch (err) {
    if (err.status === 404) return showMessage(message, `No graph ${id} for this API key.`);
    return report(message, err);
  }
  $("#graph-name").textContent = graph.name ? `“${graph.name}”` : "";
  $("#graph-body").hidden = false;
  counts(graph, degrees);
  for (const view of [drawingView(id, graph), datasets(id)]) view.catch((e) => report(message, e));
}
