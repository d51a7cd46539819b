// Small canvas charts for the console: a line chart over time, a histogram and horizontal
// bars. Drawn by hand (a few dozen lines each) rather than with a chart library: the console
// ships inside the binary with no build step, and these three are all it needs.

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

export function colour(i) {
  return PALETTE[i % PALETTE.length];
}

function prepare(canvas) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#6b7280';
  ctx.strokeStyle = '#e5e7eb';
  return { ctx, w, h };
}

function niceMax(v) {
  if (v <= 5) return 5;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function yAxis(ctx, w, h, pad, max) {
  for (let i = 0; i <= 4; i += 1) {
    const y = h - pad.bottom - ((h - pad.top - pad.bottom) * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.left, y);
    ctx.lineTo(w - pad.right, y);
    ctx.stroke();
    ctx.fillText(String(Math.round((max * i) / 4)), 2, y + 4);
  }
}

/** series: [{label, points: [[ms, value], …]}]; the x axis spans the last `spanMs`. */
export function lineChart(canvas, series, { spanMs = 10 * 60_000, now = Date.now() } = {}) {
  const { ctx, w, h } = prepare(canvas);
  const pad = { left: 40, right: 8, top: 8, bottom: 18 };
  const from = now - spanMs;
  let max = 0;
  for (const s of series) for (const [t, v] of s.points) if (t >= from) max = Math.max(max, v);
  max = niceMax(max);
  yAxis(ctx, w, h, pad, max);
  ctx.fillText(`${Math.round(spanMs / 60_000)} min`, pad.left, h - 4);
  ctx.fillText('now', w - pad.right - 20, h - 4);
  const x = (t) => pad.left + ((t - from) / spanMs) * (w - pad.left - pad.right);
  const y = (v) => h - pad.bottom - (v / max) * (h - pad.top - pad.bottom);
  series.forEach((s, i) => {
    const pts = s.points.filter(([t]) => t >= from);
    if (!pts.length) return;
    ctx.strokeStyle = colour(i);
    ctx.lineWidth = 2;
    ctx.beginPath();
    pts.forEach(([t, v], j) => (j ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.lineTo(x(now), y(pts[pts.length - 1][1]));
    ctx.stroke();
    ctx.lineWidth = 1;
  });
}

/** counts: [{label, value}], drawn as columns. */
export function histogram(canvas, counts) {
  const { ctx, w, h } = prepare(canvas);
  const pad = { left: 40, right: 8, top: 8, bottom: 18 };
  const max = niceMax(Math.max(0, ...counts.map((c) => c.value)));
  yAxis(ctx, w, h, pad, max);
  const band = (w - pad.left - pad.right) / Math.max(1, counts.length);
  counts.forEach((c, i) => {
    const bh = (c.value / max) * (h - pad.top - pad.bottom);
    ctx.fillStyle = colour(0);
    ctx.fillRect(pad.left + i * band + 2, h - pad.bottom - bh, band - 4, bh);
    ctx.fillStyle = '#6b7280';
    ctx.fillText(c.label, pad.left + i * band + 2, h - 4);
  });
}

/** rows: [{label, value}], drawn as horizontal bars with their values. */
export function bars(canvas, rows) {
  const { ctx, w, h } = prepare(canvas);
  const max = Math.max(1, ...rows.map((r) => r.value));
  const bh = Math.min(28, (h - 8) / Math.max(1, rows.length));
  rows.forEach((r, i) => {
    const y = 4 + i * bh;
    ctx.fillStyle = '#374151';
    ctx.fillText(r.label, 4, y + bh / 2 + 4);
    ctx.fillStyle = colour(i);
    const bw = ((w - 170) * r.value) / max;
    ctx.fillRect(120, y + 3, bw, bh - 6);
    ctx.fillStyle = '#374151';
    ctx.fillText(String(r.value), 124 + bw, y + bh / 2 + 4);
  });
}
