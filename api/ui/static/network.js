// The network view: the prior graph around a job's top candidate edges, drawn as SVG
// from /v1/jobs/{id}/plots/network.json (positions come from the server). Graph edges
// are grey, candidate edges coloured by score; clicking a node (or Enter on it) lists
// its best incoming and outgoing candidates from the edges endpoint. Names are text
// nodes only.
import { el, getJSON, jobPath, number, report, shortName, showMessage } from "./api.js";

const NS = "http://www.w3.org/2000/svg";
const TOP = 25;
const PER_NODE = 5;
// light to dark: low to high score among the drawn candidates
const SCALE = ["#fde725", "#7ad151", "#22a884", "#2a788e", "#414487"];

function svg(tag, attrs = {}, children = []) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

const svgText = (text, attrs) => Object.assign(svg("text", attrs), { textContent: text });
const tooltip = (text) => Object.assign(svg("title"), { textContent: text });

/** The lowest score of each colour: the drawn scores' quintiles (a few outliers do not
 * put every other edge in one colour). */
function thresholds(scores) {
  const sorted = scores.slice().sort((a, b) => a - b);
  return SCALE.map((_, i) => sorted[Math.floor((i * sorted.length) / SCALE.length)]);
}

function colourIndex(score, lows) {
  let i = 0;
  while (i + 1 < lows.length && score >= lows[i + 1]) i += 1;
  return i;
}

function arrowMarkers() {
  const colours = { grey: "#9aa3ad" };
  SCALE.forEach((c, i) => (colours[`s${i}`] = c));
  const markers = Object.entries(colours).map(([name, colour]) =>
    svg(
      "marker",
      {
        id: `arrow-${name}`,
        viewBox: "0 0 10 10",
        refX: 15,
        refY: 5,
        markerWidth: 6,
        markerHeight: 6,
        orient: "auto-start-reverse",
      },
      [svg("path", { d: "M0 0L10 5L0 10z", fill: colour })],
    ),
  );
  return svg("defs", {}, markers);
}

/** The drawing: graph edges, candidate edges (curved), nodes, a legend. */
function drawing(data, onPick) {
  const perColumn = new Map();
  for (const n of data.nodes) perColumn.set(n.x, (perColumn.get(n.x) || 0) + 1);
  const rows = Math.max(1, ...perColumn.values());
  const width = 960;
  const height = Math.max(320, Math.min(28 * rows + 80, 900));
  const [left, top, innerW, innerH] = [40, 40, width - 340, height - 80]; // labels, legend
  const at = data.nodes.map((n) => [left + n.x * innerW, top + n.y * innerH]);
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "group",
    "aria-label": "Network around the top candidates; each node is a button",
    class: "network",
  });
  root.append(tooltip("Network around the top candidates"));
  root.append(arrowMarkers());
  for (const [a, b] of data.graph_edges) {
    const [[x1, y1], [x2, y2]] = [at[a], at[b]];
    root.append(
      svg("line", { x1, y1, x2, y2, class: "graph-edge", "marker-end": "url(#arrow-grey)" }),
    );
  }
  const lows = thresholds(data.candidates.map((c) => c.score));
  for (const c of data.candidates.slice().reverse()) {
    // a curve bent to the left of its direction: a -> b and b -> a stay apart
    const [[x1, y1], [x2, y2]] = [at[c.src], at[c.dst]];
    const length = Math.hypot(x2 - x1, y2 - y1) || 1;
    const bend = 0.2 * length + 10;
    const mx = (x1 + x2) / 2 + (bend * (y2 - y1)) / length;
    const my = (y1 + y2) / 2 - (bend * (x2 - x1)) / length;
    const k = colourIndex(c.score, lows);
    const path = svg("path", {
      d: `M${x1} ${y1}Q${mx} ${my} ${x2} ${y2}`,
      stroke: SCALE[k],
      class: "candidate-edge",
      "marker-end": `url(#arrow-s${k})`,
    });
    const names = `${data.nodes[c.src].name} → ${data.nodes[c.dst].name}`;
    path.append(tooltip(`#${c.rank} ${names}: score ${c.score}`));
    root.append(path);
  }
  data.nodes.forEach((n, i) => {
    const [x, y] = at[i];
    const group = svg("g", {
      class: n.top ? "net-node top" : "net-node",
      tabindex: 0,
      role: "button",
      "data-node": i,
    });
    group.append(
      tooltip(n.name),
      svg("circle", { cx: x, cy: y, r: n.top ? 7 : 5 }),
      svgText(shortName(n.name), { x: x + 9, y: y + 4 }),
    );
    group.addEventListener("click", () => onPick(i, group));
    group.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onPick(i, group);
      }
    });
    root.append(group);
  });
  if (data.candidates.length) root.append(legend(width - 150, top, lows));
  return root;
}

function legend(x, y, lows) {
  const group = svg("g", { class: "legend" });
  group.append(svgText("candidate score", { x, y, "font-weight": "bold" }));
  SCALE.forEach((colour, i) => {
    group.append(svg("rect", { x, y: y + 10 + 18 * i, width: 14, height: 14, fill: colour }));
    const label = `≥ ${Number(lows[i].toPrecision(3))}`;
    group.append(svgText(label, { x: x + 20, y: y + 22 + 18 * i }));
  });
  const below = y + 24 + 18 * SCALE.length;
  group.append(svg("line", { x1: x, y1: below, x2: x + 14, y2: below, class: "graph-edge" }));
  group.append(svgText("edge of the graph", { x: x + 20, y: below + 4 }));
  return group;
}

function pairList(items, other) {
  if (!items.length) return el("p", { text: "none", cls: "muted" });
  return el(
    "ol",
    {},
    items.map((e) =>
      el("li", {}, [
        el("span", { text: e[other], cls: "node" }),
        el("span", { text: " · " }),
        number(e.score),
      ]),
    ),
  );
}

/** The best incoming and outgoing candidates of one node, from the edges endpoint
 * (shown only while `current()`: a later click wins whatever answers first). */
async function nodeDetail(id, name, panel, current = () => true) {
  const query = (side) => {
    const params = new URLSearchParams({ [side]: name, limit: PER_NODE });
    return getJSON(`${jobPath(id)}/edges?${params}`);
  };
  const [outgoing, incoming] = await Promise.all([query("src"), query("dst")]);
  if (!current()) return; // another node was clicked meanwhile
  panel.replaceChildren(
    el("h3", {}, [
      el("span", { text: "Node " }),
      el("span", { text: name, cls: "node", attrs: { id: "node-name" } }),
    ]),
    el("div", { cls: "pairs" }, [
      el("section", { attrs: { id: "node-in" } }, [
        el("h4", { text: `Best incoming candidates (${incoming.total} in all)` }),
        pairList(incoming.items, "src"),
      ]),
      el("section", { attrs: { id: "node-out" } }, [
        el("h4", { text: `Best outgoing candidates (${outgoing.total} in all)` }),
        pairList(outgoing.items, "dst"),
      ]),
    ]),
  );
  panel.hidden = false;
}

/** Draw the network view of job `id` into `container`; clicks fill `panel`. */
export async function networkView(id, container, panel) {
  const data = await getJSON(`${jobPath(id)}/plots/network.json?top=${TOP}`);
  const error = container.parentElement.querySelector(".message");
  let selected = null;
  let picks = 0;
  const pick = (i, group) => {
    selected?.classList.remove("selected");
    selected = group;
    group.classList.add("selected");
    const mine = ++picks;
    const current = () => mine === picks;
    nodeDetail(id, data.nodes[i].name, panel, current).catch((err) => report(error, err));
  };
  const none = data.candidates.length ? "" : "No scored candidate pair to draw. ";
  const layout = data.layered
    ? "Levels of the graph left to right: the best candidates (coloured by score) and the " +
      "graph's own edges (grey) around them."
    : "The graph has a cycle: its nodes in one column.";
  const note = `${none}${layout} Click a node (or Tab to it and press Enter) for its best candidates.`;
  container.replaceChildren(drawing(data, pick), el("p", { text: note, cls: "muted" }));
  showMessage(error, "");
}
