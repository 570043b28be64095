// The table of contents of the cluster hierarchy: the coarse clusters (biggest first), each with
// its finer clusters (the ones most of whose points it holds). Choosing one flies to it and opens
// its card: a few representative rows, the points nearest the cluster's centre (captions only;
// the map holds only the sample's safe rows).
import { h, formatNumber } from './ui.js';

/**
 * The `count` points of cluster `cid` (in `assign`, the points' cluster numbers) nearest the world
 * point (cx, cy), nearest first. `xy` is the quantised positions over `xyMax`.
 */
export function nearestInCluster(xy, xyMax, assign, cid, cx, cy, count = 3) {
  const best = [];  // [distance², id], kept sorted, at most `count`
  const qx = cx * xyMax, qy = cy * xyMax;
  for (let i = 0; i < assign.length; i++) {
    if (assign[i] !== cid) continue;
    const dx = xy[2 * i] - qx, dy = xy[2 * i + 1] - qy, d = dx * dx + dy * dy;
    if (best.length === count && d >= best[count - 1][0]) continue;
    let k = best.length < count ? best.length : count - 1;
    while (k > 0 && best[k - 1][0] > d) { best[k] = best[k - 1]; k--; }
    best[k] = [d, i];
  }
  return best.map(([, i]) => i);
}

/** Levels as a tree: [{level, index, children: [...]}] for the coarsest level, biggest first. */
export function hierarchy(meta, parents) {
  const levels = meta.clusters;
  const build = (k, keep) => {
    const level = levels[k];
    if (!level) return [];
    const order = level.labels.map((_, i) => i).filter((i) => level.size[i] > 0 && keep(i)).sort((a, b) => level.size[b] - level.size[a]);
    const next = levels[k + 1];
    return order.map((i) => ({
      level: level.name, depth: k, index: i,
      children: next ? build(k + 1, (j) => parents[next.name]?.[j] === i) : [],
    }));
  };
  return build(0, () => true);
}

export class Toc {
  constructor(el, { meta, points, palette, chunks, onFly, onChoose }) {
    Object.assign(this, { el, meta, points, palette, chunks, onFly, onChoose });
    const body = el.querySelector('.map-toc-body');
    const tree = hierarchy(meta, palette.parents);
    el.hidden = tree.length === 0;
    body.replaceChildren(this._list(tree));
    body.addEventListener('click', (event) => {
      const button = event.target.closest('button.map-toc-item');
      if (button) this.open(button);
    });
  }

  _list(nodes) {
    const list = h('ul', { class: 'map-toc-list' });
    for (const node of nodes) {
      const level = this.meta.clusters[node.depth];
      const swatch = h('span', { class: 'map-swatch', 'aria-hidden': 'true' });
      swatch.style.background = this.palette.colours[level.name]?.[node.index] || 'transparent';
      const button = h('button', { type: 'button', class: 'map-toc-item', 'data-level': level.name, 'data-index': node.index,
        'aria-expanded': 'false' }, swatch, h('span', { class: 'map-toc-label', text: level.labels[node.index] }),
      h('span', { class: 'map-legend-count', text: formatNumber(level.size[node.index]) }));
      const item = h('li', {}, button);
      if (node.children.length) item.append(this._list(node.children));
      list.append(item);
    }
    return list;
  }

  /** Fly to a cluster and show its representative rows under its entry. */
  open(button) {
    const level = this.meta.clusters.find((l) => l.name === button.dataset.level);
    const index = Number(button.dataset.index);
    const depth = this.meta.clusters.indexOf(level);
    this.onFly(level.x[index], level.y[index], depth);
    const item = button.parentElement;
    const open = item.querySelector(':scope > .map-toc-card');
    for (const other of this.el.querySelectorAll('.map-toc-card')) other.remove();
    for (const other of this.el.querySelectorAll('.map-toc-item[aria-expanded="true"]')) other.setAttribute('aria-expanded', 'false');
    if (open) return;
    const ids = nearestInCluster(this.points.xy, this.points.xyMax, this.points.clusters[level.name], index, level.x[index], level.y[index], 3);
    const card = h('div', { class: 'map-toc-card' }, h('p', { class: 'map-hint', text: 'Nearest the centre:' }));
    const list = h('ol', { class: 'map-neighbour-list' });
    for (const id of ids) {
      const row = h('button', { type: 'button', class: 'map-neighbour', 'data-id': id, text: '…' });
      row.addEventListener('click', () => this.onChoose(id));
      list.append(h('li', {}, row));
      this.chunks.point(id).then((info) => { row.textContent = info.caption || '(no caption)'; })
        .catch(() => { row.textContent = '(caption unavailable)'; });
    }
    card.append(list);
    button.after(card);
    button.setAttribute('aria-expanded', 'true');
  }
}
