/* axline line dashboard: plant flow, KPIs, live trends and events. Vanilla JS, no build step. */
(function () {
  'use strict';

  const I = window.AxI18n;
  const t = I.t;
  const WINDOW_MS = 10 * 60 * 1000;
  const MAX_EVENTS = 200;
  const UNIT_LABELS = {
    degC: '°C', degF: '°F', pct: '%', percent: '%', m3h: 'm³/h', 'm3/h': 'm³/h', um: 'µm',
  };
  const STATE_CLASS = {
    running: 'ok', idle: 'warn', microstop: 'warn', changeover: 'info', down: 'bad', alarm: 'bad',
    stopped: 'off', offline: 'off',
  };

  const S = {
    plant: null,
    lineId: null,
    tags: new Map(), // tag path -> {tag, asset, line}
    assets: new Map(), // asset path -> asset
    status: null,
    kpi: null,
    latest: {}, // tag path -> [ts_ns, value, quality]
    events: [],
    trend: new Map(), // tag path -> {t: [], mean: [], min: [], max: []}
    filterAsset: null,
    clock: { plantMs: null, perfAt: 0, rate: 1 },
    stream: 'connecting',
    source: null,
    valueEls: new Map(),
    trendDirty: true,
  };

  // -- helpers --------------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k === 'dataset') Object.assign(node.dataset, v);
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function $(id) { return document.getElementById(id); }

  function unitLabel(unit) { return unit ? (UNIT_LABELS[unit] || unit) : ''; }

  function digitsFor(tag) {
    const r = tag && tag.range;
    if (!r || r.length !== 2) return 2;
    const span = Math.abs(r[1] - r[0]);
    if (span >= 1000) return 0;
    if (span >= 10) return 1;
    return 2;
  }

  function fmtNum(v, digits) {
    if (v === null || v === undefined || !Number.isFinite(v)) return '—';
    return new Intl.NumberFormat(I.locale(), { minimumFractionDigits: digits, maximumFractionDigits: digits })
      .format(v);
  }

  function fmtPct(v, digits) {
    return v === null || v === undefined || !Number.isFinite(v) ? '—' : fmtNum(v * 100, digits ?? 1) + '%';
  }

  function fmtInt(v) { return v === null || v === undefined || !Number.isFinite(v) ? '—' : fmtNum(v, 0); }

  function plantTz() {
    const tz = S.plant && S.plant.timezone;
    try {
      new Intl.DateTimeFormat('en', { timeZone: tz || 'UTC' });
      return tz || 'UTC';
    } catch (e) {
      return 'UTC';
    }
  }

  function fmtTime(ms, withDate) {
    if (!Number.isFinite(ms)) return '—';
    const opts = {
      timeZone: plantTz(), hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
    };
    if (withDate) Object.assign(opts, { year: 'numeric', month: '2-digit', day: '2-digit' });
    return new Intl.DateTimeFormat(I.locale(), opts).format(new Date(ms));
  }

  /** Plant time now: the last plant timestamp, run on at the observed plant speed (demo runs fast). */
  function plantNowMs() {
    const c = S.clock;
    if (c.plantMs === null) return Date.now();
    const wall = Math.min(performance.now() - c.perfAt, 5000);
    return c.plantMs + wall * c.rate;
  }

  function setPlantClock(tsNs) {
    if (!Number.isFinite(tsNs)) return;
    const c = S.clock;
    const ms = tsNs / 1e6;
    const now = performance.now();
    if (c.plantMs !== null && now - c.perfAt > 200 && ms >= c.plantMs) {
      const observed = (ms - c.plantMs) / (now - c.perfAt);
      c.rate = Math.max(0, Math.min(1000, 0.7 * c.rate + 0.3 * observed));
    }
    if (c.plantMs !== null && ms < c.plantMs && ms > c.plantMs - 60000) return;  // a late, older snapshot
    c.plantMs = ms;
    c.perfAt = now;
  }

  function currentLine() {
    if (!S.plant) return null;
    return S.plant.lines.find((l) => l.id === S.lineId) || S.plant.lines[0] || null;
  }

  function assetName(path) {
    const a = S.assets.get(path);
    if (a) return I.pick(a.name, a.id);
    const parts = String(path || '').split('/');
    return parts.slice(-1)[0] || '';
  }

  function assetOf(source) {
    const parts = String(source || '').split('/');
    return parts.slice(0, 5).join('/');
  }

  function signalName(path) {
    const info = S.tags.get(path);
    if (info) return I.pick(info.tag.name, info.tag.signal);
    return String(path || '').split('/').slice(-1)[0];
  }

  async function api(path, opts) {
    const resp = await fetch(path, Object.assign({ credentials: 'same-origin' }, opts || {}));
    if (resp.status === 401) {
      window.location.assign('/login');
      throw new Error('login required');
    }
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const said = I.errorOf(body);
      const msg = said.error
        ? said.error + (said.hint ? ' (' + said.hint + ')' : '')
        : resp.statusText;
      throw new Error(msg || 'HTTP ' + resp.status);
    }
    if (resp.headers.get('X-Axline-Auth') === 'password') $('logout-form').hidden = false;
    return body;
  }

  function showBanner(text) {
    const b = $('banner');
    b.textContent = text;
    b.hidden = !text;
  }

  // -- plant model ----------------------------------------------------------------------------------
  function indexPlant(plant) {
    S.tags.clear();
    S.assets.clear();
    for (const line of plant.lines || []) {
      for (const asset of line.assets || []) {
        S.assets.set(asset.path, asset);
        for (const tag of asset.tags || []) S.tags.set(tag.path, { tag: tag, asset: asset, line: line });
      }
    }
  }

  function keyTags(asset) {
    const tags = (asset.tags || []).filter((tg) => tg.signal !== 'state');  // the state shows as colour
    const trend = tags.filter((tg) => tg.trend);
    const rest = tags.filter((tg) => !tg.trend);
    return trend.concat(rest).slice(0, 3);
  }

  function lineTrendTags() {
    const line = currentLine();
    if (!line) return [];
    const out = [];
    for (const asset of line.assets || []) {
      if (S.filterAsset && asset.path !== S.filterAsset) continue;
      for (const tag of asset.tags || []) if (tag.trend) out.push(tag);
    }
    return out;
  }

  // -- header ---------------------------------------------------------------------------------------
  function renderHeader() {
    $('plant-name').textContent = S.plant ? I.pick(S.plant.name, S.plant.site) : '';
    $('plant-tz').textContent = plantTz();
    const sel = $('line-select');
    const lines = (S.plant && S.plant.lines) || [];
    $('line-select-wrap').hidden = lines.length < 2;
    sel.replaceChildren(...lines.map((l) => el('option', { value: l.id, text: I.pick(l.name, l.id) })));
    if (S.lineId) sel.value = S.lineId;
    renderStreamState();
  }

  function renderStreamState() {
    const node = $('stream-state');
    node.dataset.state = S.stream;
    $('stream-state-text').textContent = t('stream.' + S.stream);
  }

  function tickClock() {
    $('plant-clock').textContent = fmtTime(plantNowMs(), true);
  }

  // -- line flow ------------------------------------------------------------------------------------
  function renderFlow() {
    const flow = $('flow');
    const line = currentLine();
    S.valueEls.clear();
    if (!line) { flow.replaceChildren(); return; }
    const takt = line.takt_s ? ' · ' + t('kpi.takt', { takt: fmtNum(line.takt_s, 1) + ' s' }) : '';
    $('line-name').textContent = I.pick(line.name, line.id) + takt;
    const nodes = [];
    (line.assets || []).forEach((asset, i) => {
      if (i > 0) nodes.push(el('div', { class: 'flow-arrow', 'aria-hidden': 'true' }));
      const values = keyTags(asset).map((tag) => {
        const v = el('span', { class: 'v', dataset: { tag: tag.path } }, '—');
        if (!S.valueEls.has(tag.path)) S.valueEls.set(tag.path, []);
        S.valueEls.get(tag.path).push(v);
        return el('div', { class: 'kv' },
          el('span', { class: 'k', text: I.pick(tag.name, tag.signal) }),
          el('span', { class: 'vu' }, v, el('span', { class: 'u', text: unitLabel(tag.unit) })));
      });
      const box = el('button', {
        type: 'button',
        class: 'station' + (S.filterAsset === asset.path ? ' selected' : ''),
        dataset: { station: asset.path, state: 'unknown' },
        title: t('station.click'),
        onclick: () => toggleFilter(asset.path),
      },
      el('div', { class: 'station-head' },
        el('span', { class: 'station-name', text: I.pick(asset.name, asset.id) }),
        el('span', { class: 'alarm-count', hidden: true })),
      el('div', { class: 'state-label', text: t('state.unknown') }),
      el('div', { class: 'values' }, ...values),
      el('div', { class: 'station-vision', hidden: true }));
      nodes.push(box);
    });
    flow.replaceChildren(...nodes);
    renderStatus();
    for (const [path, v] of Object.entries(S.latest)) updateValue(path, v);
  }

  function updateValue(path, v) {
    const els = S.valueEls.get(path);
    if (!els) return;
    const info = S.tags.get(path);
    const value = v ? v[1] : null;
    const quality = v ? v[2] : null;
    const text = fmtNum(value, digitsFor(info && info.tag));
    let title = '';
    if (value === null || !Number.isFinite(value)) title = t('quality.nan');
    if (quality) title = t('quality.' + quality);
    const tag = info && info.tag;
    const out = tag && tag.range && Number.isFinite(value) && (value < tag.range[0] || value > tag.range[1]);
    for (const node of els) {
      node.textContent = text;
      node.classList.toggle('bad', Boolean(quality) || out);
      node.title = title;
    }
  }

  function stationStatus(path) {
    const line = S.status && S.status.lines && S.status.lines[S.lineId];
    return (line && line.stations && line.stations[path]) || null;
  }

  function renderStatus() {
    const line = S.status && S.status.lines && S.status.lines[S.lineId];
    const state = line && line.state;
    const lineState = state ? (I.has('state.' + state) ? t('state.' + state) : state) : '';
    $('line-state').textContent = lineState ? t('line.state', { state: lineState }) : '';
    $('line-state').dataset.state = (line && line.state) || '';
    document.querySelectorAll('#flow [data-station]').forEach((box) => {
      const st = stationStatus(box.dataset.station);
      const state = st && st.state ? st.state : 'unknown';
      box.dataset.state = state;
      box.dataset.tone = STATE_CLASS[state] || 'off';
      box.querySelector('.state-label').textContent = I.has('state.' + state) ? t('state.' + state) : state;
      const alarms = st && st.alarms ? st.alarms : 0;
      const badge = box.querySelector('.alarm-count');
      badge.hidden = !alarms;
      badge.textContent = alarms ? String(alarms) : '';
      badge.title = alarms ? t('station.alarms', { n: alarms }) : '';
      renderVision(box.querySelector('.station-vision'), (st && st.vision) || []);
    });
  }

  // a camera's inspection on its station's card: tiles, image health, the newest defect type
  function renderVision(box, cams) {
    box.hidden = !cams.length;
    box.replaceChildren(...cams.map((c) => {
      const checks = Object.entries(c.health || {});
      const warn = checks.filter(([, s]) => s === 'warn').map(([k]) => k);
      // a warning first; else waiting while a check has too few images yet; else ok
      const state = warn.length ? 'warn' : (checks.some(([, s]) => s === 'waiting') || !checks.length ? 'waiting' : 'ok');
      const health = state === 'warn'
        ? t('station.vision.health_warn', { checks: warn.map((k) => t('inspect.health.name.' + k)).join(', ') })
        : t(state === 'ok' ? 'station.vision.health_ok' : 'station.vision.health_waiting');
      const lt = c.last_type;
      const label = lt && lt.label ? I.pick(lt.label, lt.type) : null;
      return el('div', { class: 'vision-cam', dataset: { camera: c.camera } },
        el('span', { class: 'vision-tiles', text: t('station.vision.tiles', { n: c.tiles }) }),
        el('span', { class: 'vision-health ' + state, dataset: { state: state, warn: warn.join(' ') },
          text: health }),
        label ? el('span', { class: 'vision-type' + (lt.known ? '' : ' unknown'), dataset: { type: lt.type || '' },
          text: t('station.vision.type', { type: label }) }) : null);
    }));
  }

  function toggleFilter(path) {
    S.filterAsset = S.filterAsset === path ? null : path;
    document.querySelectorAll('#flow [data-station]').forEach((b) => {
      b.classList.toggle('selected', b.dataset.station === S.filterAsset);
    });
    renderTrendFrames();
  }

  // -- KPIs -----------------------------------------------------------------------------------------
  function renderKpi() {
    const k = (S.kpi && S.kpi.lines && S.kpi.lines[S.lineId]) || {};
    const line = currentLine();
    $('kpi-oee').textContent = fmtPct(k.oee);
    $('kpi-apq').textContent = t('kpi.apq', {
      a: fmtPct(k.availability, 0), p: fmtPct(k.performance, 0), q: fmtPct(k.quality, 0),
    });
    const takt = Number.isFinite(k.takt_s) ? k.takt_s : line && line.takt_s;
    $('kpi-cycle').textContent = Number.isFinite(k.cycle_time_s) ? fmtNum(k.cycle_time_s, 1) + ' s' : '—';
    $('kpi-takt').textContent = Number.isFinite(takt) ? t('kpi.takt', { takt: fmtNum(takt, 1) + ' s' }) : '';
    const flag = $('kpi-takt-flag');
    const bar = $('kpi-cycle-bar');
    if (Number.isFinite(k.cycle_time_s) && Number.isFinite(takt) && takt > 0) {
      const over = k.cycle_time_s > takt;
      flag.textContent = t(over ? 'kpi.over_takt' : 'kpi.within_takt');
      flag.className = 'flag ' + (over ? 'bad' : 'ok');
      // the takt mark sits at 80 % of the meter; the bar is the cycle time on the same scale
      bar.style.width = Math.min(100, (k.cycle_time_s / takt) * 80).toFixed(1) + '%';
      bar.classList.toggle('bad', over);
    } else {
      flag.textContent = '';
      bar.style.width = '0';
    }
    $('kpi-fpy').textContent = fmtPct(k.fpy);
    $('kpi-energy').textContent = fmtNum(k.energy_per_good_kwh, 2);
    $('kpi-parts').textContent = fmtInt(k.parts_total);
    $('kpi-parts-sub').textContent = Number.isFinite(k.parts_total)
      ? t('kpi.parts_sub', { good: fmtInt(k.parts_good), rejected: fmtInt(k.parts_rejected) }) : '';
    $('kpi-shift').textContent = k.shift || '—';
    $('kpi-shift-since').textContent = Number.isFinite(k.shift_start)
      ? t('kpi.shift_since', { time: fmtTime(k.shift_start / 1e6, false).slice(0, 5) }) : '';
  }

  // -- trends ---------------------------------------------------------------------------------------
  function trendBuf(path) {
    let b = S.trend.get(path);
    if (!b) { b = { t: [], mean: [], min: [], max: [] }; S.trend.set(path, b); }
    return b;
  }

  function loadSeries(body) {
    for (const [path, s] of Object.entries(body.tags || {})) {
      const b = { t: s.t.slice(), mean: s.mean.slice(), min: s.min.slice(), max: s.max.slice() };
      const old = S.trend.get(path);
      if (old) {  // keep live points newer than the history
        const last = b.t.length ? b.t[b.t.length - 1] : -Infinity;
        old.t.forEach((tm, i) => {
          if (tm <= last) return;
          b.t.push(tm); b.mean.push(old.mean[i]); b.min.push(old.min[i]); b.max.push(old.max[i]);
        });
      }
      S.trend.set(path, b);
    }
    S.trendDirty = true;
  }

  function appendTrend(path, tsNs, value) {
    if (!S.tags.has(path) || !S.tags.get(path).tag.trend) return;
    const b = trendBuf(path);
    const tm = tsNs / 1e6;
    if (b.t.length && tm <= b.t[b.t.length - 1]) return;
    const v = Number.isFinite(value) ? value : null;
    b.t.push(tm); b.mean.push(v); b.min.push(v); b.max.push(v);
    const cutoff = tm - WINDOW_MS * 1.1;
    let drop = 0;
    while (drop < b.t.length && b.t[drop] < cutoff) drop++;
    if (drop) { b.t.splice(0, drop); b.mean.splice(0, drop); b.min.splice(0, drop); b.max.splice(0, drop); }
    S.trendDirty = true;
  }

  function renderTrendFrames() {
    const box = $('trends');
    const tags = lineTrendTags();
    const filter = $('trend-filter');
    filter.hidden = !S.filterAsset;
    $('trend-hint').hidden = Boolean(S.filterAsset);
    filter.textContent = S.filterAsset ? t('trends.filter', { name: assetName(S.filterAsset) }) : '';
    if (!tags.length) {
      box.replaceChildren(el('p', { class: 'muted empty', text: t('trends.none') }));
      return;
    }
    box.replaceChildren(...tags.map((tag) => {
      const info = S.tags.get(tag.path);
      return el('figure', { class: 'trend', dataset: { trend: tag.path } },
        el('figcaption', {},
          el('span', { class: 'trend-name', text: I.pick(tag.name, tag.signal), title: tag.path }),
          el('span', { class: 'trend-value' },
            el('span', { class: 'v', dataset: { tag: tag.path } }, '—'),
            el('span', { class: 'u', text: unitLabel(tag.unit) }))),
        el('div', { class: 'trend-asset', text: info ? I.pick(info.asset.name, info.asset.id) : '' }),
        el('canvas', { height: '90' }));
    }));
    box.querySelectorAll('.trend-value .v').forEach((v) => {
      const path = v.dataset.tag;
      if (!S.valueEls.has(path)) S.valueEls.set(path, []);
      S.valueEls.set(path, S.valueEls.get(path).filter((n) => n.isConnected).concat([v]));
      updateValue(path, S.latest[path]);
    });
    S.trendDirty = true;
  }

  function drawTrend(fig) {
    const path = fig.dataset.trend;
    const info = S.tags.get(path);
    const canvas = fig.querySelector('canvas');
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(50, canvas.clientWidth);
    const h = Math.max(40, canvas.clientHeight);
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const now = plantNowMs();
    const t0 = now - WINDOW_MS;
    const b = S.trend.get(path) || { t: [], mean: [], min: [], max: [] };
    let lo = info && info.tag.range ? info.tag.range[0] : null;
    let hi = info && info.tag.range ? info.tag.range[1] : null;
    const rangeLo = lo;
    const rangeHi = hi;
    for (let i = 0; i < b.t.length; i++) {
      if (b.t[i] < t0) continue;
      if (b.min[i] !== null && (lo === null || b.min[i] < lo)) lo = b.min[i];
      if (b.max[i] !== null && (hi === null || b.max[i] > hi)) hi = b.max[i];
    }
    if (lo === null || hi === null) { lo = 0; hi = 1; }
    if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
    const padL = 34;
    const padR = 4;
    const padT = 4;
    const padB = 14;
    const pw = w - padL - padR;
    const ph = h - padT - padB;
    const x = (tm) => padL + ((tm - t0) / WINDOW_MS) * pw;
    const y = (v) => padT + (1 - (v - lo) / (hi - lo)) * ph;
    const style = getComputedStyle(document.body);
    const grid = style.getPropertyValue('--grid').trim() || '#e5e7eb';
    const ink = style.getPropertyValue('--muted').trim() || '#6b7280';
    const lineColor = style.getPropertyValue('--trend').trim() || '#2563eb';
    const bandColor = style.getPropertyValue('--trend-band').trim() || 'rgba(37,99,235,0.15)';
    ctx.font = '10px system-ui, sans-serif';
    ctx.fillStyle = ink;
    ctx.strokeStyle = grid;
    ctx.lineWidth = 1;
    const digits = digitsFor(info && info.tag);
    for (const v of [lo, (lo + hi) / 2, hi]) {
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(padL, yy); ctx.lineTo(w - padR, yy); ctx.stroke();
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      ctx.fillText(fmtNum(v, Math.max(0, digits - 1)), padL - 4, Math.min(h - padB, Math.max(padT + 4, yy)));
    }
    // the tag's range when the data goes outside it
    ctx.strokeStyle = 'rgba(220,38,38,0.5)';
    ctx.setLineDash([3, 3]);
    for (const r of [rangeLo, rangeHi]) {
      if (r === null || (r === lo || r === hi)) continue;
      const yy = Math.round(y(r)) + 0.5;
      ctx.beginPath(); ctx.moveTo(padL, yy); ctx.lineTo(w - padR, yy); ctx.stroke();
    }
    ctx.setLineDash([]);
    ctx.textBaseline = 'alphabetic';
    ctx.textAlign = 'left';
    ctx.fillText(t('trends.ago'), padL, h - 2);
    ctx.textAlign = 'right';
    ctx.fillText(t('trends.now'), w - padR, h - 2);
    ctx.save();
    ctx.beginPath();
    ctx.rect(padL, padT, pw, ph);
    ctx.clip();
    // min-max band of the history buckets
    ctx.fillStyle = bandColor;
    let start = -1;
    const flushBand = (end) => {
      if (start < 0) return;
      ctx.beginPath();
      for (let i = start; i < end; i++) ctx.lineTo(x(b.t[i]), y(b.max[i]));
      for (let i = end - 1; i >= start; i--) ctx.lineTo(x(b.t[i]), y(b.min[i]));
      ctx.closePath();
      ctx.fill();
      start = -1;
    };
    for (let i = 0; i < b.t.length; i++) {
      const ok = b.min[i] !== null && b.max[i] !== null && b.t[i] >= t0 - 60000;
      if (ok && start < 0) start = i;
      if (!ok) flushBand(i);
    }
    flushBand(b.t.length);
    // the mean line, broken where values are missing
    ctx.strokeStyle = lineColor;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;
    for (let i = 0; i < b.t.length; i++) {
      const v = b.mean[i];
      if (v === null || b.t[i] < t0 - 60000) { pen = false; continue; }
      if (pen) ctx.lineTo(x(b.t[i]), y(v)); else ctx.moveTo(x(b.t[i]), y(v));
      pen = true;
    }
    ctx.stroke();
    ctx.restore();
  }

  function drawTrends() {
    if (S.trendDirty) {
      document.querySelectorAll('#trends [data-trend]').forEach(drawTrend);
      S.trendDirty = false;
    }
    window.requestAnimationFrame(drawTrends);
  }

  async function loadTrendHistory() {
    const line = currentLine();
    if (!line) return;
    const tags = [];
    for (const asset of line.assets || []) {
      for (const tag of asset.tags || []) if (tag.trend) tags.push(tag.path);
    }
    if (!tags.length) return;
    const body = await api('/api/series?tags=' + encodeURIComponent(tags.join(',')));
    loadSeries(body);
  }

  // -- events ---------------------------------------------------------------------------------------
  function fmtVar(v) {
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return '—';
      const digits = Math.abs(v) >= 100 ? 0 : 2;
      return new Intl.NumberFormat(I.locale(), { maximumFractionDigits: digits }).format(v);
    }
    if (typeof v === 'string' && I.has('state.' + v)) return t('state.' + v);
    return String(v);
  }

  function eventText(ev) {
    const key = 'event.' + ev.code;
    if (!ev.code || !I.has(key)) return ev.message || ev.code || '';
    const data = ev.data || {};
    const vars = {};
    for (const [k, v] of Object.entries(data)) {
      if (v !== null && typeof v !== 'object') vars[k] = fmtVar(v);
    }
    vars.asset = data.asset ? assetName(data.asset) : assetName(assetOf(ev.source));
    for (const key of ['signal', 'top']) {
      if (typeof data[key] !== 'string') continue;
      const sigPath = assetOf(ev.source) + '/' + data[key];
      vars[key] = S.tags.has(sigPath) ? signalName(sigPath) : data[key];
    }
    if (!vars.signal && S.tags.has(ev.source)) vars.signal = signalName(ev.source);
    const text = t(key, vars);
    return /\{\w+\}/.test(text) ? (ev.message || text) : text;
  }

  function contributionChart(ev) {
    const c = ev.data && ev.data.contributions;
    if (!c || typeof c !== 'object') return null;
    const rows = Object.entries(c).filter(([, v]) => Number.isFinite(v))
      .sort((a, b) => b[1] - a[1]).slice(0, 6);
    if (!rows.length) return null;
    const max = Math.max(...rows.map((r) => Math.abs(r[1]))) || 1;
    const base = assetOf(ev.source);
    return el('div', { class: 'contrib', 'aria-label': t('events.contributions') },
      el('div', { class: 'contrib-title', text: t('events.contributions') }),
      ...rows.map(([sig, v]) => {
        const path = base + '/' + sig;
        const name = S.tags.has(path) ? signalName(path) : sig;
        const bar = el('span', { class: 'bar' });
        bar.style.width = ((Math.abs(v) / max) * 100).toFixed(1) + '%';
        return el('div', { class: 'contrib-row', dataset: { signal: sig } },
          el('span', { class: 'contrib-name', text: name, title: sig }),
          el('span', { class: 'bar-wrap' }, bar),
          el('span', { class: 'contrib-val', text: fmtNum(v, 2) }));
      }));
  }

  function safeImageUrl(url) {
    return typeof url === 'string' && url.startsWith('/') && !url.startsWith('//') ? url : null;
  }

  function feedbackButtons(ev) {
    if (!['alarm', 'inspection', 'defect'].includes(ev.kind) || ev.id === null) return null;
    if (ev.ack) {
      const text = I.has('events.ack.' + ev.ack) ? t('events.ack.' + ev.ack) : ev.ack;
      return el('div', { class: 'ack ack-' + ev.ack, text: text });
    }
    if (ev.kind === 'alarm') {
      // an alarm is acknowledged through its life cycle (the server audits it under the caller's name)
      const ack = el('button', {
        type: 'button', class: 'fb fb-confirm', dataset: { act: 'ack' }, title: t('events.ack_alarm_title'),
      }, t('alarms.ack'));
      ack.addEventListener('click', async () => {
        ack.disabled = true;
        try {
          const res = await api('/api/alarms/' + ev.id + '/ack', {
            method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}',
          });
          updateEventFields({ id: ev.id, ack: (res && res.ack) || 'acknowledged', data: (res && res.data) || {} });
        } catch (e) {
          ack.disabled = false;
          showBanner(t('events.feedback_failed', { error: e.message }));
        }
      });
      return el('div', { class: 'feedback' }, ack);
    }
    const send = async (verdict, btns) => {
      btns.forEach((b) => { b.disabled = true; });
      try {
        const res = await api('/api/events/' + ev.id + '/feedback', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ verdict: verdict }),
        });
        if (res && res.event) upsertEvent(res.event);
        else updateEventFields(Object.assign({ ack: verdict }, res || {}, { id: ev.id }));
      } catch (e) {
        btns.forEach((b) => { b.disabled = false; });
        showBanner(t('events.feedback_failed', { error: e.message }));
      }
    };
    const button = (verdict, cls, key) => el('button', {
      type: 'button', class: 'fb ' + cls, dataset: { verdict: verdict }, title: t(key + '_title'),
    }, t(key));
    const yes = button('confirmed', 'fb-confirm', 'events.confirm');
    const no = button('overruled', 'fb-overrule', 'events.overrule');
    yes.addEventListener('click', () => send('confirmed', [yes, no]));
    no.addEventListener('click', () => send('overruled', [yes, no]));
    return el('div', { class: 'feedback' }, yes, no);
  }

  function eventItem(ev) {
    const sev = ev.severity || 'info';
    const kindText = I.has('kind.' + ev.kind) ? t('kind.' + ev.kind) : ev.kind;
    const heat = ev.data && safeImageUrl(ev.data.heatmap_url);
    const srcAsset = assetOf(ev.source);
    const srcText = S.assets.has(srcAsset)
      ? assetName(srcAsset) + (S.tags.has(ev.source) ? ' · ' + signalName(ev.source) : '')
      : ev.source;
    const when = ev.ts / 1e6;
    const ongoing = ev.end_ts === null && ev.kind === 'alarm';
    return el('li', {
      class: 'event sev-' + sev, dataset: { eventId: String(ev.id), kind: ev.kind, code: ev.code || '' },
    },
      el('div', { class: 'event-head' },
        el('span', { class: 'badge kind-' + ev.kind + ' sev-' + sev, text: kindText }),
        el('time', { class: 'event-time', text: fmtTime(when, false), title: fmtTime(when, true) }),
        el('span', { class: 'event-source', text: srcText, title: ev.source }),
        ongoing ? el('span', { class: 'ongoing', text: t('events.ongoing') }) : null),
      el('div', { class: 'event-msg', text: eventText(ev) }),
      contributionChart(ev),
      heat ? el('img', {
        class: 'heatmap', src: heat, alt: t('events.heatmap'), title: t('events.heatmap'), loading: 'lazy',
      }) : null,
      feedbackButtons(ev));
  }

  function lineOfEvent(ev) {
    const line = currentLine();
    const src = String(ev.source || '');
    const inLine = (l) => src === l.path || src.startsWith(l.path + '/');
    // events of this line, and plant-wide events that belong to no line
    return !line || inLine(line) || !(S.plant.lines || []).some(inLine);
  }

  function renderEvents() {
    const list = $('events');
    // routine passes and audited writes would bury the alarms: they have their own views
    const shown = S.events.filter(lineOfEvent).filter((ev) => ev.kind !== 'write' && ev.code !== 'inspection.pass');
    if (!shown.length) {
      list.replaceChildren(el('li', { class: 'muted empty', text: t('events.none') }));
      return;
    }
    list.replaceChildren(...shown.map(eventItem));
  }

  function upsertEvent(ev) {
    const i = S.events.findIndex((e) => e.id !== null && e.id === ev.id);
    if (i >= 0) S.events[i] = ev; else S.events.push(ev);
    S.events.sort((a, b) => b.ts - a.ts || (b.id || 0) - (a.id || 0));
    if (S.events.length > MAX_EVENTS) S.events.length = MAX_EVENTS;
    renderEvents();
  }

  /** Merge changed fields ({id, ack, end_ts, severity, data}) into a listed event. */
  function updateEventFields(msg) {
    const ev = S.events.find((x) => x.id !== null && x.id === msg.id);
    if (!ev) return;
    const next = Object.assign({}, ev);
    for (const [k, v] of Object.entries(msg)) {
      if (k === 'type' || k === 'id') continue;
      if (k === 'data' && v && typeof v === 'object') next.data = Object.assign({}, ev.data || {}, v);
      else next[k] = v;
    }
    upsertEvent(next);
  }

  // -- live stream ----------------------------------------------------------------------------------
  function setStream(state) {
    S.stream = state;
    renderStreamState();
  }

  function applyLatest(values) {
    for (const [path, v] of Object.entries(values || {})) {
      S.latest[path] = v;
      updateValue(path, v);
      if (v) appendTrend(path, v[0], v[1]);
    }
  }

  function openStream() {
    if (S.source) S.source.close();
    const src = new EventSource('/api/stream');
    S.source = src;
    src.onopen = () => { setStream('live'); showBanner(''); };
    src.onerror = () => {
      if (src.readyState === EventSource.CLOSED) {
        setStream('offline');
        window.setTimeout(async () => {
          try { await api('/api/health'); } catch (e) { /* api() sends to /login on 401 */ }
          if (S.source === src) openStream();
        }, 3000);
      } else {
        setStream('reconnecting');
      }
    };
    src.addEventListener('latest', (e) => {
      const msg = JSON.parse(e.data);
      setPlantClock(msg.ts);
      applyLatest(msg.values);
    });
    src.addEventListener('kpi', (e) => { S.kpi = JSON.parse(e.data); renderKpi(); });
    src.addEventListener('status', (e) => { S.status = JSON.parse(e.data); renderStatus(); });
    src.addEventListener('event', (e) => {
      const msg = JSON.parse(e.data);
      if (msg.event) upsertEvent(msg.event);
    });
    src.addEventListener('event_update', (e) => updateEventFields(JSON.parse(e.data)));
  }

  // -- start ----------------------------------------------------------------------------------------
  function renderAll() {
    renderHeader();
    renderFlow();
    renderKpi();
    renderTrendFrames();
    renderEvents();
    tickClock();
  }

  async function selectLine(id) {
    S.lineId = id;
    S.filterAsset = null;
    renderAll();
    try {
      await loadTrendHistory();
    } catch (e) {
      showBanner(t('error.load', { what: t('error.what.data'), error: e.message }));
    }
  }

  async function init() {
    I.apply();
    $('lang-toggle').addEventListener('click', () => I.toggle());
    $('line-select').addEventListener('change', (e) => selectLine(e.target.value));
    $('trend-filter').addEventListener('click', () => toggleFilter(S.filterAsset));
    I.onChange(() => renderAll());
    renderStreamState();
    try {
      S.plant = await api('/api/plant');
    } catch (e) {
      showBanner(t('error.load', { what: t('error.what.plant'), error: e.message }));
      return;
    }
    indexPlant(S.plant);
    S.lineId = (S.plant.lines && S.plant.lines[0] && S.plant.lines[0].id) || null;
    openStream();
    try {
      const [latest, status, kpi, events] = await Promise.all([
        api('/api/latest'), api('/api/status'), api('/api/kpi'), api('/api/events?limit=100'),
      ]);
      setPlantClock(latest.ts);
      S.status = status;
      S.kpi = kpi;
      for (const ev of events.events || []) S.events.push(ev);
      renderAll();
      applyLatest(latest.values);
      await loadTrendHistory();
    } catch (e) {
      renderAll();
      showBanner(t('error.load', { what: t('error.what.data'), error: e.message }));
    }
    window.setInterval(tickClock, 500);
    window.setInterval(() => { S.trendDirty = true; }, 1000);
    if (window.ResizeObserver) new ResizeObserver(() => { S.trendDirty = true; }).observe($('trends'));
    window.requestAnimationFrame(drawTrends);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
