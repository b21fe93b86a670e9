/* Shared helpers of the pages (the operations pages, know-how, setpoints, the wall screen, the dashboard). */
(function () {
  'use strict';
  const I = window.AxI18n;

  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === 'text') n.textContent = v;
      else if (k === 'dataset') Object.assign(n.dataset, v);
      else if (k === 'on') Object.entries(v).forEach(([ev, fn]) => n.addEventListener(ev, fn));
      else if (v !== null && v !== undefined && v !== false) n.setAttribute(k, v === true ? '' : v);
    });
    kids.flat().filter((c) => c !== null && c !== undefined && c !== false).forEach((c) => {
      n.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return n;
  }

  async function api(path, opts) {
    const o = Object.assign({ credentials: 'same-origin' }, opts || {});
    if (o.json !== undefined) {
      o.method = o.method || 'POST';
      o.headers = Object.assign({ 'Content-Type': 'application/json' }, o.headers || {});
      o.body = JSON.stringify(o.json);
      delete o.json;
    }
    const resp = await fetch(path, o);
    if (resp.status === 401) { window.location.assign('/login'); throw new Error('login required'); }
    const type = resp.headers.get('Content-Type') || '';
    const body = type.includes('json') ? await resp.json() : await resp.text();
    if (!resp.ok) {
      const said = window.AxI18n.errorOf(body);
      const err = new Error(said.error || resp.statusText);
      err.status = resp.status;
      err.hint = said.hint;
      throw err;
    }
    return body;
  }

  let plant = null;
  async function loadPlant() {
    if (!plant) plant = await api('/api/plant');
    return plant;
  }
  function plantTz() { return (plant && plant.timezone) || 'UTC'; }

  /** ns (or ms with isMs) since the epoch -> plant-local "YYYY-MM-DD HH:MM:SS" */
  function fmtTime(t, isMs, withDate) {
    if (t === null || t === undefined) return '–';
    const ms = isMs ? t : t / 1e6;
    const opts = { timeZone: plantTz(), hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
    if (withDate !== false) Object.assign(opts, { year: 'numeric', month: '2-digit', day: '2-digit' });
    return new Intl.DateTimeFormat(I.locale(), opts).format(new Date(ms));
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return '–';
    if (s < 60) return Math.round(s) + ' s';
    if (s < 3600) return Math.round(s / 60) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }

  const num = (x, d) => (x === null || x === undefined || !isFinite(x) ? '–' : Number(x).toFixed(d === undefined ? 1 : d));
  const pct = (x) => (x === null || x === undefined ? '–' : (100 * x).toFixed(1) + '%');

  /** An asset's (or tag's) display name from the plant. */
  function nameOf(path) {
    if (!plant) return path;
    for (const ln of plant.lines || []) {
      if (ln.path === path) return I.pick(ln.name, ln.id);
      for (const a of ln.assets || []) {
        if (a.path === path) return I.pick(a.name, a.id);
        for (const tg of a.tags || []) if (tg.path === path) return I.pick(a.name, a.id) + ' · ' + I.pick(tg.name, tg.signal);
      }
    }
    return path;
  }

  /** The display name of signal ``signal`` (a tag's last path part or a full path) of asset ``asset``. */
  function signalName(asset, signal) {
    const tg = tagInfo(signal.includes('/') ? signal : asset + '/' + signal);
    return tg ? I.pick(tg.name, tg.signal) : signal;
  }

  function tagInfo(path) {
    for (const ln of (plant && plant.lines) || []) {
      for (const a of ln.assets || []) for (const tg of a.tags || []) if (tg.path === path) return tg;
    }
    return null;
  }

  function setupHeader() {
    const btn = document.getElementById('lang-toggle');
    if (btn) btn.addEventListener('click', () => I.toggle());
    I.apply();
  }

  function say(id, text, bad) {
    const n = document.getElementById(id);
    if (!n) return;
    n.textContent = text || '';
    n.hidden = !text;
    n.classList.toggle('bad', !!bad);
  }

  window.AxOps = { el, api, loadPlant, fmtTime, fmtDuration, num, pct, nameOf, tagInfo, signalName, setupHeader, say,
    plant: () => plant, plantTz };
})();
