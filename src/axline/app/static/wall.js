/* Wall screen: one line at a time in large type, rotating through the lines (?rotate=SECONDS, 0 to
   stay; ?line=ID to pin one; ?lang=ko|en). No controls: it only shows. */
(function () {
  'use strict';
  const I = window.AxI18n;
  const O = window.AxOps;
  const t = (k, v) => I.t(k, v);
  const { el } = O;
  const q = new URLSearchParams(window.location.search);
  const rotateS = q.has('rotate') ? Math.max(0, Number(q.get('rotate')) || 0) : 20;
  const TONE = { running: 'ok', idle: 'info', microstop: 'warn', changeover: 'info', down: 'bad', stopped: 'off',
    alarm: 'bad', offline: 'off', unknown: 'off' };
  let plant = null;
  let lines = [];
  let current = 0;
  let kpi = {};
  let status = {};
  let alarms = [];

  function line() { return lines[current]; }

  function render() {
    const ln = line();
    if (!ln) return;
    document.body.dataset.line = ln.id;
    document.getElementById('w-line').textContent = I.pick(ln.name, ln.id);
    const st = (status.lines || {})[ln.id] || {};
    const stateEl = document.getElementById('w-state');
    stateEl.textContent = t('state.' + (st.state || 'unknown'));
    stateEl.dataset.tone = TONE[st.state] || 'off';
    const k = (kpi.lines || {})[ln.id] || {};
    document.getElementById('w-oee').textContent = O.pct(k.oee);
    document.getElementById('w-apq').textContent = k.oee === undefined || k.oee === null ? '' :
      t('kpi.apq', { a: O.pct(k.availability), p: O.pct(k.performance), q: O.pct(k.quality) });
    document.getElementById('w-good').textContent = k.parts_good === undefined ? '—' : String(k.parts_good);
    document.getElementById('w-rej').textContent = k.parts_rejected === undefined ? '' : t('wall.rejected', { n: k.parts_rejected });
    const cyc = document.getElementById('w-cycle');
    cyc.textContent = k.cycle_time_s ? k.cycle_time_s.toFixed(1) + ' s' : '—';
    cyc.classList.toggle('bad', !!(k.cycle_time_s && k.takt_s && k.cycle_time_s > k.takt_s));
    document.getElementById('w-takt').textContent = k.takt_s ? t('wall.takt', { s: k.takt_s.toFixed(1) }) : '';
    const stations = st.stations || {};
    document.getElementById('w-stations').replaceChildren(...(ln.assets || []).map((a) => {
      const s = stations[a.path] || {};
      const name = s.state || 'unknown';
      return el('div', { class: 'w-station', dataset: { station: a.path, tone: TONE[name] || 'off' } },
        el('div', { class: 'n', text: I.pick(a.name, a.id) }),
        el('div', { class: 'st', text: t('state.' + name) + (s.alarms ? ' · ' + t('station.alarms', { n: s.alarms }) : '') }));
    }));
    const mine = alarms.filter((a) => a.source === ln.path || a.source.startsWith(ln.path + '/')).slice(0, 4);
    document.getElementById('w-alarm-list').replaceChildren(...(mine.length ? mine.map((a) => el('li', { class: 'prio-' + a.priority },
      O.fmtTime(a.ts, false, false) + ' ' + O.nameOf(a.source) + ' — ' + (I.has('alarm.code.' + a.code) ? t('alarm.code.' + a.code) : a.code)))
      : [el('li', { class: 'none', text: t('wall.no_alarms') })]));
    document.getElementById('w-dots').replaceChildren(...lines.map((x, i) => el('span', { class: i === current ? 'on' : '' })));
  }

  async function poll() {
    try {
      [kpi, status] = await Promise.all([O.api('/api/kpi'), O.api('/api/status')]);
      const a = await O.api('/api/alarms?state=active,returned&limit=50');
      alarms = a.alarms;
      document.getElementById('w-clock').textContent = O.fmtTime(a.now, false, false);
      render();
    } catch (e) {
      document.getElementById('w-state').textContent = t('stream.offline');
    }
  }

  async function main() {
    if (q.get('lang') === 'ko' || q.get('lang') === 'en') I.setLang(q.get('lang'));
    I.apply();
    plant = await O.loadPlant();
    lines = plant.lines || [];
    const pin = q.get('line');
    if (pin) { lines = lines.filter((ln) => ln.id === pin); }
    await poll();
    window.setInterval(poll, 2000);
    if (rotateS > 0 && lines.length > 1) {
      window.setInterval(() => { current = (current + 1) % lines.length; render(); }, rotateS * 1000);
    }
  }

  document.addEventListener('DOMContentLoaded', main);
})();
