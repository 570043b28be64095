// Pan and zoom: mouse drag, wheel (zoom about the cursor; trackpad pinch arrives as ctrl+wheel),
// touch drag and pinch through pointer events, and the keyboard when the canvas has focus.
// The view is { x, y, z }: the world point at the centre and a log2 zoom.
import { DEFAULT_VIEW, clampZoom } from './state.js';

export class Camera {
  /**
   * `wheelNeedsActivation`: an embedded map leaves the wheel to the page until it is clicked
   * (or Ctrl/⌘ is held), showing `hint` meanwhile.
   */
  constructor(canvas, store, { onHover, onClick, onLeave, wheelNeedsActivation = false, hint = null } = {}) {
    this.canvas = canvas;
    this.wheelNeedsActivation = wheelNeedsActivation;
    this.active = !wheelNeedsActivation;
    this.hint = hint;
    this.hintTimer = 0;
    this.store = store;
    this.onHover = onHover || (() => {});
    this.onClick = onClick || (() => {});
    this.onLeave = onLeave || (() => {});
    this.width = 1;
    this.height = 1;
    this.target = null;
    this.pointers = new Map();
    this.gesture = null;
    this.frame = 0;
    this._bind();
  }

  resize(width, height) {
    this.width = width;
    this.height = height;
  }

  /** CSS pixels per world unit at zoom z. */
  scale(z = this.store.get('view').z) {
    return Math.min(this.width, this.height) * 0.94 * 2 ** z;
  }

  toScreen(wx, wy, view = this.store.get('view')) {
    const s = this.scale(view.z);
    return [this.width / 2 + (wx - view.x) * s, this.height / 2 - (wy - view.y) * s];
  }

  toWorld(px, py, view = this.store.get('view')) {
    const s = this.scale(view.z);
    return [view.x + (px - this.width / 2) / s, view.y - (py - this.height / 2) / s];
  }

  /** Set the view now (drag) or glide to it (wheel, keys, buttons). */
  go(view, animate = false) {
    const next = { x: view.x, y: view.y, z: clampZoom(view.z) };
    if (!animate || window.matchMedia?.('(prefers-reduced-motion: reduce)').matches) {
      this.target = null;
      this.store.set({ view: next }, 'camera');
      return;
    }
    this.target = next;
    if (!this.frame) this.frame = requestAnimationFrame(() => this._step());
  }

  _step() {
    this.frame = 0;
    if (!this.target) return;
    const v = this.store.get('view');
    const t = this.target;
    const f = 0.28;
    const next = { x: v.x + (t.x - v.x) * f, y: v.y + (t.y - v.y) * f, z: v.z + (t.z - v.z) * f };
    const s = this.scale(next.z);
    const done = Math.abs(t.z - next.z) < 0.002 && Math.abs(t.x - next.x) * s < 0.3 && Math.abs(t.y - next.y) * s < 0.3;
    this.store.set({ view: done ? t : next }, 'camera');
    if (done) this.target = null;
    else this.frame = requestAnimationFrame(() => this._step());
  }

  /** Zoom by dz (log2) keeping the world point under (px, py) fixed. */
  zoomAbout(px, py, dz, animate = true) {
    const from = this.target || this.store.get('view');
    const z = clampZoom(from.z + dz);
    const [wx, wy] = this.toWorld(px, py, from);
    const s = this.scale(z);
    const view = { x: wx - (px - this.width / 2) / s, y: wy + (py - this.height / 2) / s, z };
    this.go(view, animate);
  }

  panBy(dx, dy, animate = false) {
    const from = this.target || this.store.get('view');
    const s = this.scale(from.z);
    this.go({ x: from.x - dx / s, y: from.y + dy / s, z: from.z }, animate);
  }

  reset() {
    this.go({ ...DEFAULT_VIEW }, true);
  }

  _local(event) {
    const rect = this.canvas.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }

  _bind() {
    const c = this.canvas;
    c.addEventListener('wheel', (event) => {
      if (!this.active && !event.ctrlKey && !event.metaKey) {
        this._showHint();  // the page scrolls on
        return;
      }
      event.preventDefault();
      const [px, py] = this._local(event);
      let dy = event.deltaY;
      if (event.deltaMode === 1) dy *= 16;
      else if (event.deltaMode === 2) dy *= this.height;
      // Trackpad pinch (ctrl+wheel) sends small deltas: zoom faster per pixel.
      const dz = -dy * (event.ctrlKey ? 0.012 : 0.0022);
      this.zoomAbout(px, py, Math.max(-1, Math.min(1, dz)), !event.ctrlKey && Math.abs(dy) >= 50);
    }, { passive: false });

    if (this.wheelNeedsActivation) {
      c.addEventListener('focus', () => { this.active = true; if (this.hint) this.hint.hidden = true; });
      c.addEventListener('blur', () => { this.active = false; });
      c.addEventListener('pointerleave', () => { if (document.activeElement !== c) this.active = false; });
    }
    c.addEventListener('pointerdown', (event) => {
      this.active = true;
      if (this.hint) this.hint.hidden = true;
      if (event.button !== 0 && event.pointerType === 'mouse') return;
      c.setPointerCapture?.(event.pointerId);
      const [px, py] = this._local(event);
      this.pointers.set(event.pointerId, { x: px, y: py, startX: px, startY: py });
      this.target = null;
      this.moved = false;
      this._startGesture();
      c.classList.add('is-dragging');
    });
    c.addEventListener('pointermove', (event) => {
      const [px, py] = this._local(event);
      const p = this.pointers.get(event.pointerId);
      if (!p) {
        if (event.pointerType === 'mouse') this.onHover(px, py);
        return;
      }
      p.x = px; p.y = py;
      if (Math.hypot(px - p.startX, py - p.startY) > 4) this.moved = true;
      this._updateGesture();
    });
    const end = (event) => {
      const p = this.pointers.get(event.pointerId);
      if (!p) return;
      this.pointers.delete(event.pointerId);
      c.releasePointerCapture?.(event.pointerId);
      if (!this.moved && event.type === 'pointerup' && this.pointers.size === 0) this.onClick(p.x, p.y);
      this._startGesture();
      if (!this.pointers.size) c.classList.remove('is-dragging');
    };
    c.addEventListener('pointerup', end);
    c.addEventListener('pointercancel', end);
    c.addEventListener('pointerleave', (event) => {
      if (!this.pointers.size && event.pointerType === 'mouse') this.onLeave();
    });
    c.addEventListener('dblclick', (event) => {
      const [px, py] = this._local(event);
      this.zoomAbout(px, py, event.shiftKey ? -1 : 1, true);
    });
    c.addEventListener('keydown', (event) => this._key(event));
  }

  _showHint() {
    if (!this.hint) return;
    this.hint.hidden = false;
    clearTimeout(this.hintTimer);
    this.hintTimer = setTimeout(() => { this.hint.hidden = true; }, 1600);
  }

  _startGesture() {
    const list = [...this.pointers.values()];
    const view = this.store.get('view');
    if (list.length === 1) {
      this.gesture = { kind: 'pan', view, x: list[0].x, y: list[0].y };
    } else if (list.length >= 2) {
      const [a, b] = list;
      const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
      this.gesture = { kind: 'pinch', view, dist: Math.hypot(a.x - b.x, a.y - b.y) || 1, world: this.toWorld(mx, my, view) };
    } else {
      this.gesture = null;
    }
  }

  _updateGesture() {
    const g = this.gesture;
    if (!g) return;
    const list = [...this.pointers.values()];
    if (g.kind === 'pan' && list.length === 1) {
      const s = this.scale(g.view.z);
      this.go({ x: g.view.x - (list[0].x - g.x) / s, y: g.view.y + (list[0].y - g.y) / s, z: g.view.z });
    } else if (g.kind === 'pinch' && list.length >= 2) {
      const [a, b] = list;
      const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
      const z = clampZoom(g.view.z + Math.log2((Math.hypot(a.x - b.x, a.y - b.y) || 1) / g.dist));
      const s = this.scale(z);
      this.go({ x: g.world[0] - (mx - this.width / 2) / s, y: g.world[1] + (my - this.height / 2) / s, z });
    }
  }

  _key(event) {
    if (event.altKey || event.metaKey || event.ctrlKey) return;
    const step = Math.min(this.width, this.height) * 0.15;
    const keys = {
      ArrowLeft: () => this.panBy(step, 0, true),
      ArrowRight: () => this.panBy(-step, 0, true),
      ArrowUp: () => this.panBy(0, step, true),
      ArrowDown: () => this.panBy(0, -step, true),
      '+': () => this.zoomAbout(this.width / 2, this.height / 2, 0.5),
      '=': () => this.zoomAbout(this.width / 2, this.height / 2, 0.5),
      '-': () => this.zoomAbout(this.width / 2, this.height / 2, -0.5),
      _: () => this.zoomAbout(this.width / 2, this.height / 2, -0.5),
      0: () => this.reset(),
    };
    const fn = keys[event.key];
    if (fn) {
      event.preventDefault();
      fn();
    }
  }
}
