/* Quality charts: a control chart of a measured characteristic with its limits, the spec limits
   and run-rule violations; its range chart; Cp / Cpk overall, per shift and per lot. */
(function () {
  'use strict';
  const I = window.AxI18n;
  const O = window.AxOps;
  const t = (k, v) => I.t(k, v);
  const { el } = O;
  let rep = null;

  function table(id, head, rows) {
    document.getElementById(id).replaceChildren(el('tr', {}, head.map((h) => el('th', { text: h }))),
      ...(rows.length ? rows.map((r) => el('tr', {}, r.map((c) => el('td', { text: String(c) }))))
        : [el('tr', {}, el('td', { colspan: String(head.length), class: 'muted', text: t('perf.none') }))]));
  }

  const f3 = (x) => O.num(x, 3);

  function render() {
    if (!rep) return;
    const L = rep.limits;
    const p = rep.points;
    const d = Math.max(3, Math.min(6, 2 - Math.floor(Math.log10(Math.max(L.sigma, 1e-9)))));
    // the axis spans the measurements (a short history does not shrink into a corner)
    const t0 = p.t.length ? Math.max(rep.from / 1e6, p.t[0] - 0.02 * (p.t[p.t.length - 1] - p.t[0])) : rep.from / 1e6;
    const t1 = p.t.length ? Math.min(rep.to / 1e6, p.t[p.t.length - 1] + 0.02 * (p.t[p.t.length - 1] - p.t[0]) + 1) : rep.to / 1e6;
    const spec = rep.spec || {};
    const fmt = (ms, withDate) => O.fmtTime(ms, true, withDate);
    AxChart.draw(document.getElementById('q-x'), {
      t0, t1, fmtTime: fmt, yDigits: d,
      series: [{ t: p.t, y: p.x, color: '#1d4ed8', dots: true, width: 1 }],
      hlines: [
        { y: L.center, color: '#16a34a', label: t('quality.cl') },
        { y: L.ucl, color: '#d97706', dash: [6, 4], label: 'UCL' },
        { y: L.lcl, color: '#d97706', dash: [6, 4], label: 'LCL' },
        { y: spec.usl, color: '#dc2626', dash: [2, 3], label: 'USL' },
        { y: spec.lsl, color: '#dc2626', dash: [2, 3], label: 'LSL' },
      ],
      markers: rep.violations.map((v) => ({ t: v.ts / 1e6, y: v.value, color: '#dc2626', label: String(v.rule) })),
      vmarks: [{ t: rep.baseline[1] / 1e6, color: '#9ca3af' }],
    });
    AxChart.draw(document.getElementById('q-r'), {
      t0, t1, fmtTime: fmt, yDigits: d,
      series: [{ t: p.t, y: p.r, color: '#7c3aed', width: 1 }],
      hlines: [{ y: L.r_center, color: '#16a34a', label: rep.chart === 'imr' ? 'MR' : 'R' },
        { y: L.r_ucl, color: '#d97706', dash: [6, 4], label: 'UCL' }],
    });
    document.getElementById('q-legend').replaceChildren(
      el('span', { text: t('quality.legend', { n: p.x.length, v: rep.violations.length }) }));
    document.getElementById('q-baseline').textContent = t('quality.baseline', {
      from: O.fmtTime(rep.baseline[0]), to: O.fmtTime(rep.baseline[1]), n: L.points,
      center: f3(L.center), ucl: f3(L.ucl), lcl: f3(L.lcl) });
    const c = rep.capability || {};
    const stat = (k, v, id) => el('div', { class: 'stat', dataset: { stat: id } }, el('div', { class: 'k', text: k }), el('div', { class: 'v', text: v }));
    document.getElementById('q-cap').replaceChildren(
      stat('Cp', O.num(c.cp, 2), 'cp'), stat('Cpk', O.num(c.cpk, 2), 'cpk'), stat('Pp', O.num(c.pp, 2), 'pp'),
      stat('Ppk', O.num(c.ppk, 2), 'ppk'), stat(t('quality.mean'), f3(c.mean), 'mean'),
      stat(t('quality.n'), String(c.n || 0), 'n'), stat(t('quality.oos'), String(c.out_of_spec || 0), 'oos'),
      stat(t('quality.spec'), (spec.lsl !== undefined ? spec.lsl : '–') + ' … ' + (spec.usl !== undefined ? spec.usl : '–'), 'spec'));
    table('q-shift', [t('quality.shift'), t('quality.n'), t('quality.mean'), 'Cp', 'Cpk', t('quality.oos')],
      rep.by_shift.map((g) => [g.shift + ' · ' + O.fmtTime(g.shift_start, false), g.n, f3(g.mean), O.num(g.cp, 2), O.num(g.cpk, 2), g.out_of_spec]));
    table('q-lot', [t('quality.lot'), t('quality.n'), t('quality.mean'), 'Cp', 'Cpk', t('quality.oos')],
      rep.by_lot.map((g) => [O.fmtTime(g.first_ts), g.n, f3(g.mean), O.num(g.cp, 2), O.num(g.cpk, 2), g.out_of_spec]));
    table('q-viol', [t('quality.time'), t('quality.rule'), t('quality.value')],
      rep.violations.slice(-50).reverse().map((v) => [O.fmtTime(v.ts), t('rule.' + v.rule), f3(v.value)]));
  }

  async function load() {
    const tag = document.getElementById('q-tag').value;
    if (!tag) return;
    const hours = Number(document.getElementById('q-period').value);
    const chart = document.getElementById('q-chart').value;
    const rules = document.getElementById('q-rules').value;
    const now = (await O.api('/api/latest?tags=' + encodeURIComponent(tag))).ts;
    const qs = new URLSearchParams({ tag, from: String(now - hours * 3600e9), to: String(now + 1), chart, n: '5', rules });
    try {
      rep = await O.api('/api/quality/chart?' + qs.toString());
      O.say('msg', '');
      document.body.dataset.violations = String(rep.violations.length);
      render();
    } catch (e) {
      O.say('msg', t('quality.failed', { error: e.message }) + (e.hint ? ' — ' + e.hint : ''), true);
    }
  }

  async function main() {
    O.setupHeader();
    await O.loadPlant();
    const tags = (await O.api('/api/quality/tags')).tags;
    const sel = document.getElementById('q-tag');
    const fill = () => {
      const v = sel.value;
      sel.replaceChildren(...tags.map((tg) => el('option', { value: tg.path, text: O.nameOf(tg.path) })));
      if (v) sel.value = v;
    };
    fill();
    if (!tags.length) O.say('msg', t('quality.no_tags'), true);
    const q = new URLSearchParams(window.location.search);
    if (q.get('tag')) sel.value = q.get('tag');
    ['q-tag', 'q-period', 'q-chart', 'q-rules'].forEach((id) => document.getElementById(id).addEventListener('change', load));
    document.getElementById('q-refresh').addEventListener('click', load);
    I.onChange(() => { fill(); render(); });
    window.addEventListener('resize', render);
    await load();
    window.setInterval(load, 15000);
  }

  document.addEventListener('DOMContentLoaded', main);
})();
