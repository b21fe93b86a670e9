/* A small canvas chart for the operations pages: time axis in plant time, lines, min/max bands
   (so that peaks survive decimation), horizontal limit lines, point markers and event marks. */
(function () {
  'use strict';
  const PAD = { l: 62, r: 12, t: 10, b: 24 };
  const COLORS = ['#1d4ed8', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#be185d', '#4d7c0f', '#b45309', '#334155'];

  function niceTicks(lo, hi, n) {
    const span = hi - lo || Math.abs(hi) || 1;
    const step0 = span / Math.max(1, n);
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return out;
  }

  function timeTicks(t0, t1, n) {
    const steps = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 30 * 86400]
      .map((s) => s * 1000);
    const want = (t1 - t0) / Math.max(1, n);
    const step = steps.find((s) => s >= want) || steps[steps.length - 1];
    const out = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) out.push(t);
    return { ticks: out, step };
  }

  /**
   * Draw on ``canvas``. opts: {t0, t1 (ms), series: [{t, y, lo, hi, color, dash, width, dots}],
   * hlines: [{y, color, dash, label}], markers: [{t, y, color, label}], vmarks: [{t, color, label}],
   * fmtTime(ms, withDate), yDigits}. Returns {toT(px), toX(ms), plot: {x, y, w, h}}.
   */
  function draw(canvas, opts) {
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 800;
    const cssH = canvas.clientHeight || 260;
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cssW, cssH);
    const plot = { x: PAD.l, y: PAD.t, w: cssW - PAD.l - PAD.r, h: cssH - PAD.t - PAD.b };
    const t0 = opts.t0;
    const t1 = opts.t1 > t0 ? opts.t1 : t0 + 1;
    let lo = Infinity;
    let hi = -Infinity;
    const see = (v) => { if (v !== null && v !== undefined && isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } };
    (opts.series || []).forEach((s) => {
      (s.y || []).forEach(see); (s.lo || []).forEach(see); (s.hi || []).forEach(see);
    });
    (opts.hlines || []).forEach((h) => see(h.y));
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (hi === lo) { hi += 0.5; lo -= 0.5; }
    const m = (hi - lo) * 0.06;
    lo -= m; hi += m;
    const toX = (t) => plot.x + ((t - t0) / (t1 - t0)) * plot.w;
    const toY = (v) => plot.y + (1 - (v - lo) / (hi - lo)) * plot.h;
    // grid and axes
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = '#6b7280';
    g.strokeStyle = '#e8ebf0';
    g.lineWidth = 1;
    const digits = opts.yDigits !== undefined ? opts.yDigits : Math.max(0, Math.min(6, 2 - Math.floor(Math.log10((hi - lo) || 1))));
    niceTicks(lo, hi, 5).forEach((v) => {
      const y = Math.round(toY(v)) + 0.5;
      g.beginPath(); g.moveTo(plot.x, y); g.lineTo(plot.x + plot.w, y); g.stroke();
      g.textAlign = 'right'; g.textBaseline = 'middle';
      g.fillText(v.toFixed(digits), plot.x - 6, y);
    });
    const tt = timeTicks(t0, t1, Math.max(2, Math.floor(plot.w / 110)));
    tt.ticks.forEach((t) => {
      const x = Math.round(toX(t)) + 0.5;
      g.beginPath(); g.moveTo(x, plot.y); g.lineTo(x, plot.y + plot.h); g.stroke();
      g.textAlign = 'center'; g.textBaseline = 'top';
      if (opts.fmtTime) g.fillText(opts.fmtTime(t, tt.step >= 86400000), x, plot.y + plot.h + 5);
    });
    g.strokeStyle = '#d9dee5';
    g.strokeRect(plot.x + 0.5, plot.y + 0.5, plot.w, plot.h);
    g.save();
    g.beginPath(); g.rect(plot.x, plot.y, plot.w, plot.h); g.clip();
    // event marks
    (opts.vmarks || []).forEach((vm) => {
      const x = Math.round(toX(vm.t)) + 0.5;
      g.strokeStyle = vm.color || '#f59e0b';
      g.setLineDash([3, 3]);
      g.beginPath(); g.moveTo(x, plot.y); g.lineTo(x, plot.y + plot.h); g.stroke();
      g.setLineDash([]);
    });
    // limit lines
    (opts.hlines || []).forEach((h) => {
      if (h.y === null || h.y === undefined || !isFinite(h.y)) return;
      const y = Math.round(toY(h.y)) + 0.5;
      g.strokeStyle = h.color || '#6b7280';
      g.setLineDash(h.dash || []);
      g.beginPath(); g.moveTo(plot.x, y); g.lineTo(plot.x + plot.w, y); g.stroke();
      g.setLineDash([]);
      if (h.label) { g.fillStyle = h.color || '#6b7280'; g.textAlign = 'right'; g.textBaseline = 'bottom'; g.fillText(h.label, plot.x + plot.w - 4, y - 2); }
    });
    // series: band (min..max per bucket) then the line
    (opts.series || []).forEach((s, k) => {
      const color = s.color || COLORS[k % COLORS.length];
      const t = s.t || [];
      if (s.lo && s.hi) {
        g.fillStyle = color;
        g.globalAlpha = 0.22;
        for (let i = 0; i < t.length; i++) {
          if (s.lo[i] === null || s.hi[i] === null) continue;
          const x = toX(t[i]);
          const y1 = toY(s.hi[i]);
          const y2 = toY(s.lo[i]);
          g.fillRect(x - 0.5, y1, Math.max(1, s.bw ? toX(t[i] + s.bw) - x : 1), Math.max(1, y2 - y1));
        }
        g.globalAlpha = 1;
      }
      g.strokeStyle = color;
      g.lineWidth = s.width || 1.5;
      g.setLineDash(s.dash || []);
      g.beginPath();
      let pen = false;
      for (let i = 0; i < t.length; i++) {
        const v = s.y[i];
        if (v === null || v === undefined || !isFinite(v)) { pen = false; continue; }
        const x = toX(t[i]);
        const y = toY(v);
        if (pen) g.lineTo(x, y); else { g.moveTo(x, y); pen = true; }
      }
      g.stroke();
      g.setLineDash([]);
      if (s.dots) {
        g.fillStyle = color;
        for (let i = 0; i < t.length; i++) {
          if (s.y[i] === null || !isFinite(s.y[i])) continue;
          g.beginPath(); g.arc(toX(t[i]), toY(s.y[i]), 2, 0, 2 * Math.PI); g.fill();
        }
      }
    });
    // point markers (rule violations)
    (opts.markers || []).forEach((mk) => {
      g.fillStyle = mk.color || '#dc2626';
      g.beginPath(); g.arc(toX(mk.t), toY(mk.y), 4.5, 0, 2 * Math.PI); g.fill();
      if (mk.label) { g.textAlign = 'center'; g.textBaseline = 'bottom'; g.fillText(mk.label, toX(mk.t), toY(mk.y) - 6); }
    });
    g.restore();
    return { toX, toT: (px) => t0 + ((px - plot.x) / plot.w) * (t1 - t0), plot };
  }

  window.AxChart = { draw, COLORS };
})();
