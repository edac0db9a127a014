// cicada charts: line charts on <canvas>, written for the web UI (no library).
//
//   const chart = new CicadaCharts.LineChart(containerElement, {
//     title: "Requests per second",
//     series: [{name: "RPS", color: "#2e7d32"}, {name: "Failures/s", color: "#c62828", axis: "right"}],
//     xFormat: CicadaCharts.formatElapsed,   // or formatClock, or any x => string
//     yFormat: v => v.toFixed(0), y2Format: ...,
//   });
//   chart.setData(xs, [ys0, ys1]);   // whole history at once (null = gap)
//   chart.append(x, [y0, y1]);       // one more point
//
// Several series share a time x-axis; each series is on the left or the right
// y-axis; y ranges are automatic with "nice" ticks from 0. The canvas follows
// the container's size (ResizeObserver) and the device pixel ratio; hovering
// shows every series' value at the nearest x. Drawing is coalesced to one per
// animation frame and skipped while the chart is not visible, so appending a
// point every second to several charts costs nothing when their tab is hidden.
"use strict";

(function (global) {
  const FONT = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  const PAD = { top: 12, right: 20, bottom: 26, left: 54 };
  const X_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

  /** Ticks at 1, 2, 2.5 or 5 × 10^k covering [0, max] (or [min, max]). */
  function niceTicks(min, max, count) {
    if (!(max > min)) {
      max = min + 1;
    }
    const raw = (max - min) / Math.max(1, count);
    const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = magnitude;
    for (const m of [1, 2, 2.5, 5, 10]) {
      step = m * magnitude;
      if (step >= raw) break;
    }
    const lo = Math.floor(min / step) * step;
    const hi = Math.ceil(max / step) * step;
    const ticks = [];
    for (let v = lo; v <= hi + step / 2; v += step) {
      ticks.push(Math.abs(v) < step / 1e6 ? 0 : v);
    }
    return { ticks, lo, hi, step };
  }

  /** Seconds since start as m:ss or h:mm:ss. */
  function formatElapsed(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = String(s % 60).padStart(2, "0");
    return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
  }

  /** Epoch milliseconds as a short local date and time. */
  function formatClock(ms) {
    const d = new Date(ms);
    const pad = (n) => String(n).padStart(2, "0");
    return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  /** A compact number: 1234 -> 1.23k, 0.5 -> 0.5. */
  function formatCompact(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
    if (a >= 10 || a === 0) return v.toFixed(0);
    if (a >= 1) return v.toFixed(1).replace(/\.0$/, "");
    return v.toPrecision(2);
  }

  class LineChart {
    constructor(container, options) {
      this.options = Object.assign(
        { title: "", series: [], xFormat: formatElapsed, yFormat: formatCompact, y2Format: formatCompact, xTicks: 6, yTicks: 4, emptyText: "no data yet" },
        options || {}
      );
      this.series = this.options.series.map((s, i) => ({
        name: s.name,
        color: s.color || ["#2e7d32", "#c62828", "#1565c0", "#ef6c00", "#6a1b9a"][i % 5],
        axis: s.axis === "right" ? "right" : "left",
        dash: s.dash || null,
        visible: true,
      }));
      this.xs = [];
      this.ys = this.series.map(() => []);
      this.hoverIndex = -1;
      this.frame = 0;

      this.root = document.createElement("figure");
      this.root.className = "chart";
      if (this.options.title) {
        const caption = document.createElement("figcaption");
        caption.textContent = this.options.title;
        this.root.appendChild(caption);
      }
      this.legend = document.createElement("div");
      this.legend.className = "chart-legend";
      this.series.forEach((s, i) => {
        const item = document.createElement("button");
        item.type = "button";
        item.className = "chart-legend-item";
        item.innerHTML = `<span class="chart-swatch"></span>`;
        item.firstChild.style.background = s.color;
        item.appendChild(document.createTextNode(s.name));
        item.title = "show or hide this series";
        item.addEventListener("click", () => {
          s.visible = !s.visible;
          item.classList.toggle("off", !s.visible);
          this.draw();
        });
        this.legend.appendChild(item);
        s.legendItem = item;
      });
      this.root.appendChild(this.legend);
      this.box = document.createElement("div");
      this.box.className = "chart-box";
      this.canvas = document.createElement("canvas");
      this.tooltip = document.createElement("div");
      this.tooltip.className = "chart-tooltip";
      this.tooltip.hidden = true;
      this.box.append(this.canvas, this.tooltip);
      this.root.appendChild(this.box);
      container.appendChild(this.root);

      this.canvas.addEventListener("mousemove", (e) => this.onHover(e));
      this.canvas.addEventListener("mouseleave", () => {
        this.hoverIndex = -1;
        this.tooltip.hidden = true;
        this.draw();
      });
      this.canvas.addEventListener("touchstart", (e) => this.onHover(e.touches[0]), { passive: true });
      if (global.ResizeObserver) {
        this.resizer = new ResizeObserver(() => this.draw());
        this.resizer.observe(this.box);
      }
      this.draw();
    }

    /** Replaces all points: `ys[i][j]` is series i at `xs[j]`. */
    setData(xs, ys) {
      this.xs = xs.slice();
      this.ys = this.series.map((_, i) => (ys[i] || []).slice());
      this.draw();
    }

    /** Adds one point per series at `x` (a repeated x replaces the last point). */
    append(x, values) {
      const n = this.xs.length;
      if (n > 0 && this.xs[n - 1] === x) {
        this.series.forEach((_, i) => (this.ys[i][n - 1] = values[i] ?? null));
      } else if (n > 0 && x < this.xs[n - 1]) {
        return; // out of order: the stored history already has it
      } else {
        this.xs.push(x);
        this.series.forEach((_, i) => this.ys[i].push(values[i] ?? null));
      }
      this.draw();
    }

    /** Number of x positions drawn (the e2e test reads it from data-points). */
    get points() {
      return this.xs.length;
    }

    destroy() {
      if (this.resizer) this.resizer.disconnect();
      cancelAnimationFrame(this.frame);
      this.root.remove();
    }

    /** Schedules a redraw (one per animation frame at most). */
    draw() {
      if (this.frame) return;
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.render();
      });
    }

    /** Whether series `i` has any value (empty series get no axis or legend). */
    hasData(i) {
      return this.ys[i].some((v) => v !== null && v !== undefined);
    }

    geometry() {
      const width = this.box.clientWidth;
      const height = this.box.clientHeight;
      const hasRight = this.series.some((s, i) => s.axis === "right" && this.hasData(i));
      const plot = {
        left: PAD.left,
        top: PAD.top,
        right: width - (hasRight ? PAD.left : PAD.right),
        bottom: height - PAD.bottom,
      };
      return { width, height, plot, hasRight };
    }

    range(axis) {
      let max = 0;
      this.series.forEach((s, i) => {
        if (s.axis !== axis || !s.visible) return;
        for (const v of this.ys[i]) if (v !== null && v > max) max = v;
      });
      return niceTicks(0, max, this.options.yTicks);
    }

    render() {
      const { width, height, plot, hasRight } = this.geometry();
      this.canvas.dataset.points = String(this.xs.length);
      this.series.forEach((s, i) => {
        const empty = this.xs.length > 0 && !this.hasData(i);
        if (s.legendItem.hidden !== empty) s.legendItem.hidden = empty;
      });
      if (width === 0 || height === 0) return; // hidden: drawn when shown
      const dpr = global.devicePixelRatio || 1;
      const cw = Math.round(width * dpr);
      const ch = Math.round(height * dpr);
      if (this.canvas.width !== cw || this.canvas.height !== ch) {
        this.canvas.width = cw;
        this.canvas.height = ch;
        this.canvas.style.width = width + "px";
        this.canvas.style.height = height + "px";
      }
      const ctx = this.canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, width, height);
      ctx.font = FONT;
      const style = getComputedStyle(this.root);
      const ink = style.getPropertyValue("--chart-ink").trim() || "#555";
      const grid = style.getPropertyValue("--chart-grid").trim() || "#e4e4e4";

      const n = this.xs.length;
      if (n === 0) {
        ctx.fillStyle = ink;
        ctx.textAlign = "center";
        ctx.fillText(this.options.emptyText, width / 2, height / 2);
        return;
      }
      const x0 = this.xs[0];
      const x1 = n > 1 ? this.xs[n - 1] : x0 + 1;
      const sx = (x) => plot.left + ((x - x0) / (x1 - x0 || 1)) * (plot.right - plot.left);
      const left = this.range("left");
      const right = hasRight ? this.range("right") : null;
      const sy = (r) => (v) => plot.bottom - ((v - r.lo) / (r.hi - r.lo || 1)) * (plot.bottom - plot.top);
      const syLeft = sy(left);
      const syRight = right ? sy(right) : null;

      // Grid and y labels.
      ctx.lineWidth = 1;
      ctx.strokeStyle = grid;
      ctx.fillStyle = ink;
      ctx.textBaseline = "middle";
      for (const t of left.ticks) {
        const y = Math.round(syLeft(t)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(plot.left, y);
        ctx.lineTo(plot.right, y);
        ctx.stroke();
        ctx.textAlign = "right";
        ctx.fillText(this.options.yFormat(t), plot.left - 6, y);
      }
      if (right) {
        ctx.textAlign = "left";
        for (const t of right.ticks) {
          ctx.fillText(this.options.y2Format(t), plot.right + 6, syRight(t));
        }
      }
      // X labels at round steps (1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10 min...),
      // as many as fit.
      ctx.textBaseline = "top";
      ctx.textAlign = "center";
      const labelWidth = ctx.measureText(this.options.xFormat(x1)).width + 24;
      const fit = Math.max(2, Math.min(this.options.xTicks, Math.floor((plot.right - plot.left) / labelWidth)));
      const step = X_STEPS.find((s) => (x1 - x0) / s <= fit) || Math.ceil((x1 - x0) / fit);
      for (let x = Math.ceil(x0 / step) * step; x <= x1; x += step) {
        const px = sx(x);
        const w = ctx.measureText(this.options.xFormat(x)).width / 2;
        ctx.textAlign = px - w < plot.left - 20 ? "left" : px + w > plot.right + 20 ? "right" : "center";
        ctx.fillText(this.options.xFormat(x), px, plot.bottom + 6);
      }

      // Series. Long runs have more points than pixels: draw min/max per pixel.
      ctx.save();
      ctx.beginPath();
      ctx.rect(plot.left - 4, plot.top - 4, plot.right - plot.left + 8, plot.bottom - plot.top + 8);
      ctx.clip();
      this.series.forEach((s, i) => {
        if (!s.visible) return;
        const ys = this.ys[i];
        const y = s.axis === "right" ? syRight : syLeft;
        ctx.strokeStyle = s.color;
        ctx.lineWidth = 1.75;
        ctx.lineJoin = "round";
        ctx.setLineDash(s.dash || []);
        ctx.beginPath();
        let pen = false;
        if (n === 1) {
          if (ys[0] !== null) {
            ctx.arc(sx(this.xs[0]), y(ys[0]), 2.5, 0, 2 * Math.PI);
            ctx.fillStyle = s.color;
            ctx.fill();
          }
          return;
        }
        for (let j = 0; j < n; j++) {
          const v = ys[j];
          if (v === null || v === undefined) {
            pen = false;
            continue;
          }
          const px = sx(this.xs[j]);
          const py = y(v);
          if (pen) ctx.lineTo(px, py);
          else {
            ctx.moveTo(px, py);
            const next = ys[j + 1];
            if (next === null || next === undefined) {
              // An isolated value (gaps on both sides): a dot.
              ctx.fillStyle = s.color;
              ctx.fillRect(px - 1.5, py - 1.5, 3, 3);
            }
          }
          pen = true;
        }
        ctx.stroke();
        if (this.options.dots) {
          ctx.fillStyle = s.color;
          for (let j = 0; j < n; j++) {
            if (ys[j] === null || ys[j] === undefined) continue;
            ctx.beginPath();
            ctx.arc(sx(this.xs[j]), y(ys[j]), 3, 0, 2 * Math.PI);
            ctx.fill();
          }
        }
      });
      ctx.setLineDash([]);
      ctx.restore();

      // Hover marker.
      if (this.hoverIndex >= 0 && this.hoverIndex < n) {
        const px = Math.round(sx(this.xs[this.hoverIndex])) + 0.5;
        ctx.strokeStyle = ink;
        ctx.globalAlpha = 0.5;
        ctx.beginPath();
        ctx.moveTo(px, plot.top);
        ctx.lineTo(px, plot.bottom);
        ctx.stroke();
        ctx.globalAlpha = 1;
        this.series.forEach((s, i) => {
          const v = this.ys[i][this.hoverIndex];
          if (!s.visible || v === null || v === undefined) return;
          const y = s.axis === "right" ? syRight : syLeft;
          ctx.fillStyle = s.color;
          ctx.beginPath();
          ctx.arc(px, y(v), 3, 0, 2 * Math.PI);
          ctx.fill();
        });
      }
      this.scaleX = { sx, x0, x1, plot };
    }

    onHover(event) {
      if (!event || !this.scaleX || this.xs.length === 0) return;
      const rect = this.canvas.getBoundingClientRect();
      const px = event.clientX - rect.left;
      const { x0, x1, plot } = this.scaleX;
      const x = x0 + ((px - plot.left) / (plot.right - plot.left || 1)) * (x1 - x0);
      // Binary search for the nearest x.
      let lo = 0;
      let hi = this.xs.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.xs[mid] < x) lo = mid + 1;
        else hi = mid;
      }
      if (lo > 0 && Math.abs(this.xs[lo - 1] - x) < Math.abs(this.xs[lo] - x)) lo -= 1;
      this.hoverIndex = lo;
      const rows = [`<div class="chart-tooltip-x">${escapeText(this.options.xFormat(this.xs[lo]))}</div>`];
      this.series.forEach((s, i) => {
        if (!s.visible) return;
        const v = this.ys[i][lo];
        const fmt = s.axis === "right" ? this.options.y2Format : this.options.yFormat;
        const text = v === null || v === undefined ? "–" : (this.options.tooltipFormat || fmt)(v, s);
        rows.push(`<div><span class="chart-swatch" style="background:${s.color}"></span>${escapeText(s.name)}: <b>${escapeText(text)}</b></div>`);
      });
      this.tooltip.innerHTML = rows.join("");
      this.tooltip.hidden = false;
      const boxWidth = this.box.clientWidth;
      const tipWidth = this.tooltip.offsetWidth;
      const left = px + 12 + tipWidth > boxWidth ? px - 12 - tipWidth : px + 12;
      this.tooltip.style.left = Math.max(0, left) + "px";
      this.tooltip.style.top = "8px";
      this.draw();
    }
  }

  function escapeText(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  global.CicadaCharts = { LineChart, niceTicks, formatElapsed, formatClock, formatCompact };
})(window);
