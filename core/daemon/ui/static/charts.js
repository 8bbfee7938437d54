// Pictures drawn as SVG: line charts of stats, and the image layer tree (the guidebook's `images -viz`).
import { h } from "preact";
import htm from "htm";
import { shortId } from "./format.js";

const html = htm.bind(h);

export function LineChart({ title, points, format, width = 460, height = 140, test }) {
  const pad = { left: 8, right: 8, top: 24, bottom: 8 };
  const max = Math.max(1e-9, ...points);
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const step = points.length > 1 ? innerW / (points.length - 1) : 0;
  const xy = points.map((v, i) => [pad.left + i * step, pad.top + innerH - (v / max) * innerH]);
  const line = xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  const area = xy.length ? `${pad.left},${pad.top + innerH} ${line} ${xy[xy.length - 1][0].toFixed(1)},${pad.top + innerH}` : "";
  const last = points.length ? format(points[points.length - 1]) : "–";
  return html`<figure class="chart" data-test=${test}>
    <svg viewBox="0 0 ${width} ${height}" width=${width} height=${height} role="img" aria-label=${title}>
      <rect x="0" y="0" width=${width} height=${height} rx="6" class="chart-bg" />
      <text x=${pad.left} y="16" class="chart-title">${title}</text>
      <text x=${width - pad.right} y="16" text-anchor="end" class="chart-value">${last} (max ${format(max)})</text>
      <line x1=${pad.left} x2=${width - pad.right} y1=${pad.top + innerH} y2=${pad.top + innerH} class="chart-axis" />
      ${xy.length > 1 && html`<polygon points=${area} class="chart-area" /><polyline points=${line} class="chart-line" />`}
    </svg>
  </figure>`;
}

// The layers of all images as one tree: a layer is a child of the layer below it, images that share
// base layers share a branch, and each image's tags label the layer it ends with.
export function layerTree(images) {
  const root = { id: "", children: new Map(), tags: [], depth: -1 };
  for (const image of images) {
    let node = root;
    for (const layer of image.layers) {
      if (!node.children.has(layer)) node.children.set(layer, { id: layer, children: new Map(), tags: [], depth: node.depth + 1 });
      node = node.children.get(layer);
    }
    node.tags.push(...(image.tags.length ? image.tags : [`<none> ${shortId(image.id)}`]));
  }
  const nodes = [];
  const edges = [];
  let row = 0;
  const place = (node) => {
    const kids = [...node.children.values()];
    kids.forEach(place);
    node.y = kids.length ? (kids[0].y + kids[kids.length - 1].y) / 2 : row++;
    if (node !== root) nodes.push(node);
    for (const kid of kids) if (node !== root) edges.push([node, kid]);
  };
  place(root);
  return { nodes, edges, rows: row, depth: Math.max(0, ...nodes.map((n) => n.depth + 1)), roots: [...root.children.values()] };
}

export function LayerTree({ images }) {
  const { nodes, edges, rows, depth } = layerTree(images);
  if (!nodes.length) return html`<p class="muted">No layers yet.</p>`;
  const colW = 150;
  const rowH = 40 + 14 * Math.max(1, ...nodes.map((n) => n.tags.length));
  const boxW = 118;
  const tagW = 210;
  const width = depth * colW + tagW + 20;
  const height = rows * rowH + 30;
  const x = (n) => 10 + n.depth * colW;
  const y = (n) => 10 + n.y * rowH;
  return html`<div class="tree-scroll"><svg class="layer-tree" data-test="layer-tree" viewBox="0 0 ${width} ${height}"
      width=${width} height=${height} role="img" aria-label="Image layer tree">
    ${edges.map(([a, b]) => html`<path class="tree-edge" d="M${x(a) + boxW},${y(a) + 14} C${x(a) + boxW + 20},${y(a) + 14} ${x(b) - 20},${y(b) + 14} ${x(b)},${y(b) + 14}" />`)}
    ${nodes.map((n) => html`<g class="tree-node" data-layer=${n.id}>
      <title>${n.id}</title>
      <rect x=${x(n)} y=${y(n)} width=${boxW} height="28" rx="6" class=${n.tags.length ? "layer tagged" : "layer"} />
      <text x=${x(n) + boxW / 2} y=${y(n) + 18} text-anchor="middle" class="layer-id">${shortId(n.id)}</text>
      ${n.tags.map((tag, i) => n.children.size
        ? html`<text x=${x(n) + 4} y=${y(n) + 42 + i * 13} class="layer-tag">${tag}</text>`
        : html`<text x=${x(n) + boxW + 10} y=${y(n) + 12 + i * 14} class="layer-tag">${tag}</text>`)}
    </g>`)}
  </svg></div>`;
}
