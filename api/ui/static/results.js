// The job page's result views beyond the edge table: W as a heatmap (or the top pairs
// when the job is too large to draw), ROC / precision-recall of the validation edges, and
// the network view (network.js). Each asks only for what exists: the graph's size and
// the metrics decide which request is made, so no view ends in a 4xx.
import {
  $,
  config,
  el,
  getJSON,
  getOnce,
  graphPath,
  jobPath,
  number,
  onSubmit,
  parsePairs,
  report,
  showImage,
  showMessage,
} from "./api.js";
import { networkView } from "./network.js";

const TOP_PAIRS = 20;

/** W as a heatmap up to the server's node limit, else the top pairs as a list. */
async function weightsView(id, functionNodes) {
  const limit = (await config()).heatmap_max_nodes;
  const note = $("#weights-note");
  if (functionNodes <= limit) {
    $("#weights-plot").hidden = false;
    note.textContent = `${functionNodes} function nodes, in a topological order of the graph.`;
    await showImage($("#weights-plot"), `${jobPath(id)}/plots/weights.svg`);
    return;
  }
  note.textContent =
    `${functionNodes.toLocaleString()} function nodes: over the heatmap's ${limit}, so ` +
    `here are the ${TOP_PAIRS} best candidate pairs (all of W: GET ${jobPath(id)}/weights?format=npy).`;
  const page = await getJSON(`${jobPath(id)}/edges?limit=${TOP_PAIRS}`);
  const items = page.items.map((e) =>
    el("li", {}, [
      el("span", { text: e.src, cls: "node" }),
      el("span", { text: " → " }),
      el("span", { text: e.dst, cls: "node" }),
      el("span", { text: " score " }),
      number(e.score),
    ]),
  );
  const list = $("#weights-top");
  list.replaceChildren(...items);
  list.hidden = false;
}

/** ROC and precision-recall of the job's validation edges when it has some, and of
 * the edges typed into the form (POST roc.svg: nothing is stored). */
async function rocView(id) {
  const form = $("#roc-form");
  const error = $("#roc-error");
  onSubmit(form, async () => {
    showMessage(error, "");
    let edges;
    try {
      edges = parsePairs(form.elements.edges.value);
    } catch (err) {
      return showMessage(error, err.message);
    }
    if (!edges) return showMessage(error, "Type at least one edge.");
    try {
      const body = { positive_edges: edges };
      await showImage($("#roc-plot"), `${jobPath(id)}/plots/roc.svg`, { method: "POST", body });
    } catch (err) {
      return report(error, err);
    }
    $("#roc-note").textContent =
      `Your ${edges.length} held-out edges against the other candidate pairs.`;
    $("#roc-plot").hidden = false;
  });
  const metrics = await getJSON(`${jobPath(id)}/metrics`);
  const positives = metrics.validation_edges || [];
  const note = $("#roc-note");
  if (!positives.length) {
    note.textContent =
      "No validation edges in this job's spec (validation.edges or " +
      "validation.holdout_fraction). Type held-out edges you know to rank them.";
    return;
  }
  note.textContent = `${positives.length} validation edges against the other candidate pairs.`;
  $("#roc-plot").hidden = false;
  await showImage($("#roc-plot"), `${jobPath(id)}/plots/roc.svg`);
}

/** Every result view of a succeeded job whose graph is `graphId`. */
export async function resultViews(id, graphId, message) {
  let graph;
  try {
    graph = await getOnce(graphPath(graphId));
  } catch (err) {
    return report(message, err);
  }
  const views = [
    weightsView(id, graph.counts.function),
    rocView(id),
    networkView(id, $("#network"), $("#node-detail")),
  ];
  for (const view of views) view.catch((err) => report(message, err));
}
