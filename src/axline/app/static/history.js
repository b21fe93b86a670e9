/* History explorer: any tags over any period, one chart per tag on a shared time axis. Each bucket
   is one pixel column with its min..max band (peaks survive decimation) and mean line; drag to
   zoom, buttons to pan; compare with an earlier period; events overlaid; CSV / Excel export. */
(function () {
  'use strict';
  const I = window.AxI18n;
  const O = window.AxOps;
  const t = (k, v) => I.t(k, v);
  const { el } = O;
  const MAX_TAGS = 12;
  const state = { tags: [], from: 0, to: 0, data: null, cmp: null, events: [], stack: [] };
  let allTags = [];
  let seq = 0;

  const toLocalInput = (ns) => {
    const parts = new Intl.DateTimeFormat('en-CA', { timeZone: O.plantTz(), year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).formatToParts(new Date(ns / 1e6));
    const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
    return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}`;
  };
  /** A plant-local "YYYY-MM-DDTHH:MM:SS" -> ns (UTC), by finding the zone's offset at that time. */
  const fromLocalInput = (s) => {
    const guess = Date.parse(s + 'Z');
    if (!isFinite(guess)) return null;
    const back = Date.parse(toLocalInput(guess * 1e6) + 'Z');
    return (guess - (back - guess)) * 1e6;
  };

  function width() {
    const c = document.getElementById('h-charts');
    return Math.max(200, Math.floor((c.clientWidth || 900) - 74));
  }

  function step() { return Math.max(1, Math.ceil((state.to - state.from) / width())); }

  function syncUrl() {
    const q = new URLSearchParams({ tags: state.tags.join(','), from: String(state.from), to: String(state.to) });
    window.history.replaceState(null, '', '/history?' + q.toString());
    const ex = (fmt) => '/api/history/export?' + new URLSearchParams({ tags: state.tags.join(','), from: String(state.from),
      to: String(state.to), step: String(step()), agg: 'all', format: fmt, lang: I.getLang() }).toString();
    document.getElementById('h-csv').href = ex('csv');
    document.getElementById('h-xlsx').href = ex('xlsx');
    document.getElementById('h-from').value = toLocalInput(state.from);
    document.getElementById('h-to').value = toLocalInput(state.to);
  }

  async function series(from, to) {
    const q = new URLSearchParams({ tags: state.tags.join(','), from: String(from), to: String(to), step: String(step()) });
    return (await O.api('/api/history/series?' + q.toString())).tags;
  }

  async function load() {
    const my = ++seq;
    syncUrl();
    if (!state.tags.length) { render(); return; }
    const t0 = performance.now();
    document.body.dataset.drawn = 'loading';
    try {
      const cmpSel = document.getElementById('h-compare').value;
      const span = state.to - state.from;
      const off = cmpSel === 'prev' ? span : cmpSel ? Number(cmpSel) * 1e9 : 0;
      const jobs = [series(state.from, state.to)];
      if (off) jobs.push(series(state.from - off, state.to - off)); else jobs.push(Promise.resolve(null));
      if (document.getElementById('h-events').checked) {
        jobs.push(O.api('/api/events?' + new URLSearchParams({ since: String(state.from), before: String(state.to), limit: '500' })));
      } else jobs.push(Promise.resolve({ events: [] }));
      const [data, cmp, ev] = await Promise.all(jobs);
      if (my !== seq) return;
      state.data = data; state.cmp = cmp; state.cmpOff = off; state.events = ev.events;
      render();
      const ms = performance.now() - t0;
      document.body.dataset.drawMs = ms.toFixed(1);
      document.body.dataset.drawn = String(my);
      state.drawMs = ms;
      drawNote();
      O.say('msg', '');
    } catch (e) {
      document.body.dataset.drawn = 'error';
      O.say('msg', t('history.failed', { error: e.message }) + (e.hint ? ' — ' + e.hint : ''), true);
    }
  }

  function drawNote() {
    if (state.drawMs !== undefined) {
      document.getElementById('h-draw').textContent = t('history.drawn', { ms: Math.round(state.drawMs), n: state.tags.length });
    }
  }

  function render() {
    const box = document.getElementById('h-charts');
    if (!state.tags.length || !state.data) {
      box.replaceChildren(el('p', { class: 'muted', text: t('history.pick') }));
      document.getElementById('h-event-list').replaceChildren();
      return;
    }
    const from = state.from / 1e6;
    const to = state.to / 1e6;
    const bw = step() / 1e6;
    const vmarks = state.events.map((e) => ({ t: e.ts / 1e6, color: e.kind === 'alarm' ? '#dc2626' : '#f59e0b' }));
    const charts = state.tags.map((path, k) => {
      const d = state.data[path] || { t: [], min: [], max: [], mean: [] };
      const info = O.tagInfo(path);
      const canvas = el('canvas', { class: 'history-chart', dataset: { tag: path } });
      const fig = el('figure', { class: 'history-fig', dataset: { tag: path } },
        el('figcaption', {}, el('span', { class: 'sw', dataset: { k: String(k) } }),
          O.nameOf(path) + (info && info.unit ? ' [' + info.unit + ']' : ''),
          el('span', { class: 'muted small', text: ' · ' + t('history.points', { n: d.t.length }) })),
        el('div', { class: 'chart-wrap' }, canvas));
      return { fig, canvas, d, k };
    });
    box.replaceChildren(...charts.map((c) => c.fig));
    charts.forEach(({ canvas, d, k }) => {
      const color = AxChart.COLORS[k % AxChart.COLORS.length];
      const series = [{ t: d.t, y: d.mean, lo: d.min, hi: d.max, color, bw }];
      const c = state.cmp && state.cmp[state.tags[k]];
      if (c) series.unshift({ t: c.t.map((x) => x + state.cmpOff / 1e6), y: c.mean, color: '#9ca3af', dash: [5, 4], width: 1.2 });
      const chart = AxChart.draw(canvas, { t0: from, t1: to, series, vmarks, fmtTime: (ms, wd) => O.fmtTime(ms, true, wd) });
      zoomable(canvas, chart);
    });
    const list = document.getElementById('h-event-list');
    list.replaceChildren(...state.events.slice(0, 50).map((e) => el('li', { dataset: { kind: e.kind } },
      el('span', { class: 'muted', text: O.fmtTime(e.ts) + ' ' }), O.nameOf(e.source) + ' — ' + (e.message || e.code))));
  }

  function zoomable(canvas, chart) {
    let x0 = null;
    let sel = null;
    const pos = (ev) => ev.clientX - canvas.getBoundingClientRect().left;
    canvas.addEventListener('mousedown', (ev) => { x0 = pos(ev); });
    canvas.addEventListener('mousemove', (ev) => {
      if (x0 === null) return;
      if (!sel) { sel = el('div', { class: 'zoom-sel' }); canvas.parentNode.appendChild(sel); }
      const a = Math.min(x0, pos(ev));
      const b = Math.max(x0, pos(ev));
      sel.style.left = a + 'px';
      sel.style.width = (b - a) + 'px';
    });
    const end = (ev) => {
      if (x0 === null) return;
      const x1 = pos(ev);
      if (sel) sel.remove();
      sel = null;
      const a = Math.min(x0, x1);
      const b = Math.max(x0, x1);
      x0 = null;
      if (b - a < 4) return;
      const f = Math.round(chart.toT(a) * 1e6);
      const tt = Math.round(chart.toT(b) * 1e6);
      zoomTo(Math.max(f, state.from), Math.min(tt, state.to));
    };
    canvas.addEventListener('mouseup', end);
    canvas.addEventListener('mouseleave', () => { if (sel) sel.remove(); sel = null; x0 = null; });
  }

  function zoomTo(from, to, keep) {
    if (to - from < 1e9) to = from + 1e9;  // at least a second
    if (!keep) state.stack.push([state.from, state.to]);
    state.from = Math.round(from);
    state.to = Math.round(to);
    document.getElementById('h-preset').value = '';
    load();
  }

  function renderTags() {
    const f = document.getElementById('h-filter').value.trim().toLowerCase();
    const box = document.getElementById('h-tags');
    box.replaceChildren(...allTags.filter((tg) => !f || (tg.path + ' ' + O.nameOf(tg.path)).toLowerCase().includes(f))
      .map((tg) => el('label', {}, el('input', { type: 'checkbox', value: tg.path, checked: state.tags.includes(tg.path),
        on: { change: (ev) => toggleTag(tg.path, ev.target.checked) } }),
      ' ' + O.nameOf(tg.path) + (tg.stored ? '' : ' ' + t('history.no_data')))));
  }

  function toggleTag(path, on) {
    if (on && !state.tags.includes(path)) {
      if (state.tags.length >= MAX_TAGS) { O.say('msg', t('history.too_many', { n: MAX_TAGS }), true); renderTags(); return; }
      state.tags.push(path);
    }
    if (!on) state.tags = state.tags.filter((p) => p !== path);
    load();
  }

  async function main() {
    O.setupHeader();
    await O.loadPlant();
    allTags = (await O.api('/api/history/tags')).tags;
    const q = new URLSearchParams(window.location.search);
    const now = (await O.api('/api/latest?tags=' + encodeURIComponent((allTags[0] || {}).path || ''))).ts;
    state.tags = (q.get('tags') || '').split(',').filter((p) => p);
    if (!state.tags.length) {
      const trend = [];
      (O.plant().lines || []).forEach((ln) => ln.assets.forEach((a) => a.tags.forEach((tg) => { if (tg.trend) trend.push(tg.path); })));
      state.tags = trend.slice(0, 3);
    }
    state.to = Number(q.get('to')) || now;
    state.from = Number(q.get('from')) || state.to - 8 * 3600e9;
    document.getElementById('h-preset').value = q.get('from') ? '' : '8';
    renderTags();
    document.getElementById('h-filter').addEventListener('input', renderTags);
    document.getElementById('h-preset').addEventListener('change', async (ev) => {
      if (!ev.target.value) return;
      const latest = (await O.api('/api/latest?tags=' + encodeURIComponent(state.tags[0] || ''))).ts;
      zoomTo(latest - Number(ev.target.value) * 3600e9, latest);
      document.getElementById('h-preset').value = ev.target.value;
    });
    const fromTo = () => {
      const f = fromLocalInput(document.getElementById('h-from').value);
      const tt = fromLocalInput(document.getElementById('h-to').value);
      if (f !== null && tt !== null && tt > f) zoomTo(f, tt);
      else O.say('msg', t('history.bad_range'), true);
    };
    document.getElementById('h-from').addEventListener('change', fromTo);
    document.getElementById('h-to').addEventListener('change', fromTo);
    const pan = (dir) => { const s = state.to - state.from; zoomTo(state.from + dir * s / 2, state.to + dir * s / 2); };
    document.getElementById('h-back').addEventListener('click', () => pan(-1));
    document.getElementById('h-fwd').addEventListener('click', () => pan(1));
    document.getElementById('h-zoomout').addEventListener('click', () => {
      const prev = state.stack.pop();
      if (prev) zoomTo(prev[0], prev[1], true);
      else { const s = state.to - state.from; zoomTo(state.from - s / 2, state.to + s / 2, true); }
    });
    document.getElementById('h-compare').addEventListener('change', load);
    document.getElementById('h-events').addEventListener('change', load);
    I.onChange(() => { renderTags(); render(); syncUrl(); drawNote(); });
    let rt = null;
    window.addEventListener('resize', () => { clearTimeout(rt); rt = setTimeout(load, 200); });
    await load();
  }

  document.addEventListener('DOMContentLoaded', main);
})();
