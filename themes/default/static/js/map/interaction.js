// Hover and pin: picking the point under the pointer (throttled to one pick per frame), the
// tooltip that follows it and the pinned card, with the point's details fetched on demand.
import { worldOf } from './data.js';

export class Interaction {
  constructor({ store, camera, index, points, visible, chunks, tooltip, card, loop, meta, neighbours, onWalk }) {
    Object.assign(this, { store, camera, index, points, visible, chunks, tooltip, card, loop, meta, neighbours, onWalk });
    this.hoverQueued = 0;
    this.hoverXY = null;
  }

  /** The visible point under (px, py) CSS pixels of the canvas, or -1. */
  pick(px, py) {
    const [wx, wy] = this.camera.toWorld(px, py);
    const { size } = this.loop.style(this.store.get('view').z);
    const radius = Math.max(8, size) / this.camera.scale();
    return this.index.nearest(wx, wy, radius, (i) => this.visible[i] === 1);
  }

  hoverAt(px, py) {
    this.hoverXY = [px, py];
    if (this.hoverQueued) return;
    this.hoverQueued = requestAnimationFrame(() => {
      this.hoverQueued = 0;
      const [x, y] = this.hoverXY;
      const i = this.pick(x, y);
      this.store.set({ hover: i });
      if (i >= 0) this.tooltip.place(x, y);
    });
  }

  clickAt(px, py) {
    this.store.set({ pinned: this.pick(px, py) });
  }

  async showHover(i) {
    const canvas = this.camera.canvas;
    if (i < 0) { this.tooltip.hide(); canvas.style.cursor = ''; return; }
    canvas.style.cursor = 'pointer';
    const [x, y] = this.hoverXY || this.camera.toScreen(...worldOf(this.points, i));
    this.tooltip.show(i, x, y, null, this.meta);
    try {
      const info = await this.chunks.point(i);
      if (this.store.get('hover') === i) this.tooltip.show(i, ...(this.hoverXY || [x, y]), info, this.meta);
    } catch (error) {
      console.warn('atlas map: detail chunk failed', error);
    }
  }

  async showPinned(i) {
    if (i < 0) { this.card.hide(); return; }
    this.card.show(i, null, this.meta);
    try {
      const info = await this.chunks.point(i);
      if (this.store.get('pinned') === i) this.card.show(i, info, this.meta);
    } catch (error) {
      console.warn('atlas map: detail chunk failed', error);
    }
    if (!this.neighbours?.available || this.store.get('pinned') !== i) return;
    try {
      const ids = await this.neighbours.of(i);
      this.card.neighbours(i, ids, (id) => this.chunks.point(id), this.onWalk);
    } catch (error) {
      console.warn('atlas map: neighbours failed', error);
    }
  }

  /** Pick again where the pointer is (the view moved under it): the tooltip follows its point. */
  repick() {
    if (this.hoverXY && this.store.get('hover') >= 0) this.hoverAt(...this.hoverXY);
  }
}
