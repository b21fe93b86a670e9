/* Setpoint optimiser: today's setpoints, the advisor's proposals with their evidence (expected
   effect, uncertainty, the twin's verdict), approve / reject, the verdict after verification, and
   what-if trajectories on the twin. */
(function () {
  'use strict';
  const I = window.AxI18n;
  const O = window.AxOps;
  const t = (k, v) => I.t(k, v);
  const { el } = O;
  let data = null;
  let unitId = null;
  let lastWhatIf = null;

  const unit = () => (data && data.units.find((u) => u.id === unitId)) || null;
  const sig = (path) => O.signalName(path.split('/').slice(0, -1).join('/'), path);
  const fmt = (x) => (x === null || x === undefined ? '–' : Math.abs(x) >= 100 ? O.num(x, 1) : O.num(x, Math.abs(x) >= 1 ? 2 : 4));
  const metricName = (m) => (I.has('opt.metric.' + m) ? t('opt.metric.' + m) : m);

  function renderUnit() {
    const u = unit();
    const dec = document.getElementById('opt-decisions');
    if (!u) {
      dec.replaceChildren(el('tr', {}, el('td', { class: 'muted', text: data && data.error ? window.AxI18n.errorOf(data).error : t('opt.no_units') })));
      return;
    }
    dec.replaceChildren(
      el('tr', {}, [t('opt.setpoint'), t('opt.now'), t('opt.bounds'), t('opt.max_step')].map((h) => el('th', { text: h }))),
      ...u.spec.decisions.map((d) => el('tr', { dataset: { tag: d.tag } },
        el('td', { text: sig(d.tag) }), el('td', { class: 'opt-now', text: fmt(u.x[d.tag]) }),
        el('td', { text: fmt(d.lo) + ' … ' + fmt(d.hi) }), el('td', { text: '±' + fmt(d.max_step) }))));
    const cons = u.spec.constraints.map((c) => metricName(c.metric) + (c.kind === 'max' ? ' ≤ ' + fmt(c.limit)
      : c.kind === 'min' ? ' ≥ ' + fmt(c.limit) : ' ' + t('opt.held', { tol: (100 * c.tolerance).toFixed(1) })));
    document.getElementById('opt-problem').textContent = t('opt.problem', {
      objective: metricName(u.spec.objective), constraints: cons.join(', '),
      settle: O.fmtDuration(u.spec.settle_s), verify: O.fmtDuration(u.spec.verify_s) });
    renderInputs(u);
  }

  function renderInputs(u) {
    const box = document.getElementById('wi-inputs');
    if (box.dataset.unit === u.id) return;
    box.dataset.unit = u.id;
    box.replaceChildren(...u.spec.decisions.map((d) => el('label', { class: 'ops-field' },
      el('span', { text: sig(d.tag) }),
      el('input', { type: 'number', step: 'any', min: String(d.lo), max: String(d.hi), value: u.x[d.tag] === null ? '' : String(u.x[d.tag]),
        dataset: { tag: d.tag }, class: 'wi-input' }))));
  }

  function moveText(p) {
    return Object.keys(p.x).map((k) => {
      const a = p.x0[k]; const b = p.x[k];
      return sig(k) + ': ' + fmt(a) + ' → ' + fmt(b) + (Math.abs(b - a) < 1e-9 ? '' : ' (' + (b > a ? '+' : '') + fmt(b - a) + ')');
    }).join(' · ');
  }

  function evidence(p, u) {
    const rows = [];
    const exp = (p.advice && p.advice.expected) || {};
    const obj = u.spec.objective;
    if (p.advice && p.advice.gain !== undefined && p.advice.gain !== null && !p.advice.manual) {
      rows.push(el('li', { text: t('opt.expected', { metric: metricName(obj), gain: fmt(p.advice.gain), std: fmt(p.advice.gain_std) }) }));
    }
    Object.keys(exp).forEach((m) => {
      if (m === obj) return;
      rows.push(el('li', { class: 'muted', text: metricName(m) + ': ' + fmt(exp[m].mean_now) + ' → ' + fmt(exp[m].mean) + ' ± ' + fmt(exp[m].std) }));
    });
    if (p.twin) {
      const items = (p.twin.constraints || []).map((c) => metricName(c.metric) + ' ' + fmt(c.value) + ' ' + (c.ok ? '✓' : '✗'));
      rows.push(el('li', { class: 'opt-twin', text: t('opt.twin_said', { obj: metricName(obj), value: fmt((p.twin.predicted || {})[obj]), list: items.join(', ') }) }));
    }
    if (p.small_step) rows.push(el('li', { class: 'opt-small', text: t('opt.small_step') }));
    if (p.verdict) {
      const b = p.verdict.before || {}; const a = p.verdict.after || {};
      rows.push(el('li', { class: 'opt-verdict', text: t('opt.verdict', { metric: metricName(obj), before: fmt(b[obj]), after: fmt(a[obj]) }) }));
    }
    if (p.reason) rows.push(el('li', { class: 'opt-reason', text: t('opt.reason', { reason: p.reason }) }));
    return el('ul', { class: 'opt-evidence' }, rows);
  }

  function actions(p) {
    if (p.status !== 'proposed') return null;
    const note = el('input', { type: 'text', class: 'opt-note', placeholder: t('opt.reject_reason') });
    return el('div', { class: 'toolbar' },
      el('button', { type: 'button', class: 'btn opt-approve', text: t('opt.approve'), on: { click: () => act(p.id, 'approve', {}) } }),
      note,
      el('button', { type: 'button', class: 'btn opt-reject', text: t('opt.reject'), on: { click: () => act(p.id, 'reject', { reason: note.value }) } }));
  }

  function renderProposals() {
    const u = unit();
    const box = document.getElementById('opt-proposals');
    if (!u || !u.proposals.length) { box.replaceChildren(el('p', { class: 'muted', text: t('opt.none') })); return; }
    box.replaceChildren(...u.proposals.map((p) => el('div', { class: 'opt-proposal card', dataset: { id: String(p.id), status: p.status } },
      el('div', { class: 'card-head' },
        el('strong', { text: '#' + p.id + ' ' }),
        el('span', { class: 'badge opt-status st-' + p.status, text: t('opt.status.' + p.status) }),
        el('span', { class: 'muted small', text: ' ' + t('opt.by', { who: p.proposer, asked: p.requested_by || '–', approver: p.approver || '–', time: O.fmtTime(p.created_ns) }) })),
      el('div', { class: 'opt-move', text: moveText(p) }),
      evidence(p, u),
      actions(p),
      el('details', {}, el('summary', { text: t('opt.steps') }),
        el('ol', {}, p.steps.map((s) => el('li', { class: 'small', text: O.fmtTime(s.ts) + ' ' + t('opt.step.' + s.step) + ' (' + s.user + '): ' + s.message })))))));
  }

  async function refresh() {
    try {
      data = await O.api('/api/optimize');
      const sel = document.getElementById('opt-unit');
      if (!unitId && data.units.length) unitId = data.units[0].id;
      if (sel.options.length !== data.units.length) {
        sel.replaceChildren(...data.units.map((u) => el('option', { value: u.id, text: I.pick(u.spec.name, u.id) })));
        sel.value = unitId || '';
      }
      renderUnit();
      renderProposals();
    } catch (e) {
      O.say('msg', t('opt.failed', { error: e.message }), true);
    }
  }

  async function act(id, what, body) {
    try {
      await O.api('/api/optimize/proposals/' + id + '/' + what, { json: body });
      O.say('msg', '');
    } catch (e) {
      O.say('msg', t('opt.failed', { error: e.message + (e.hint ? ' — ' + e.hint : '') }), true);
    }
    refresh();
  }

  async function propose() {
    const busy = document.getElementById('opt-busy');
    busy.hidden = false;
    try {
      const r = await O.api('/api/optimize/' + encodeURIComponent(unitId) + '/propose', { json: {} });
      O.say('msg', r.proposal ? '' : t('opt.no_proposal', { reason: r.reason }), false);
    } catch (e) {
      O.say('msg', t('opt.failed', { error: e.message }), true);
    } finally {
      busy.hidden = true;
    }
    refresh();
  }

  function drawWhatIf() {
    const r = lastWhatIf;
    const u = unit();
    if (!r || !u) return;
    const m0 = r.now.metrics; const m1 = r.what_if.metrics;
    document.getElementById('wi-metrics').replaceChildren(
      el('tr', {}, [t('opt.metric'), t('opt.today'), t('opt.whatif_col')].map((h) => el('th', { text: h }))),
      ...Object.keys(m0).map((k) => el('tr', { dataset: { metric: k } }, el('td', { text: metricName(k) }), el('td', { text: fmt(m0[k]) }), el('td', { class: 'wi-value', text: fmt(m1[k]) }))));
    const tr0 = r.now.trajectory; const tr1 = r.what_if.trajectory;
    const start = Date.now();
    const ts = tr0.t_s.map((s) => start + s * 1000);
    const tags = (u.spec.plot && u.spec.plot.length ? u.spec.plot : Object.keys(tr0).filter((k) => k !== 't_s')).filter((k) => tr0[k]);
    const box = document.getElementById('wi-charts');
    box.replaceChildren(...tags.map((tag) => el('div', { class: 'chart-wrap wi-chart', dataset: { tag } },
      el('h3', { class: 'small', text: sig(tag) }), el('canvas', { class: 'chart-x' }))));
    box.querySelectorAll('.wi-chart').forEach((wrap) => {
      const tag = wrap.dataset.tag;
      AxChart.draw(wrap.querySelector('canvas'), {
        t0: ts[0], t1: ts[ts.length - 1], fmtTime: (ms) => '+' + ((ms - start) / 3600000).toFixed(1) + ' h',
        series: [{ t: ts, y: tr0[tag], color: '#64748b', width: 1.5 }, { t: ts, y: tr1[tag], color: '#1d4ed8', width: 2 }],
      });
    });
  }

  async function whatIf() {
    const x = {};
    document.querySelectorAll('.wi-input').forEach((n) => { if (n.value !== '') x[n.dataset.tag] = Number(n.value); });
    const hours = Number(document.getElementById('wi-hours').value);
    const st = document.getElementById('wi-status');
    st.textContent = t('opt.running');
    try {
      lastWhatIf = await O.api('/api/optimize/' + encodeURIComponent(unitId) + '/whatif', { json: { x, hours } });
      st.textContent = t('opt.ran', { hours: String(hours), wall: O.num(lastWhatIf.wall_s, 1) });
      st.dataset.done = '1';
      drawWhatIf();
    } catch (e) {
      st.textContent = '';
      O.say('msg', t('opt.failed', { error: e.message + (e.hint ? ' — ' + e.hint : '') }), true);
    }
  }

  async function submitOwn() {
    const x = {};
    document.querySelectorAll('.wi-input').forEach((n) => { if (n.value !== '') x[n.dataset.tag] = Number(n.value); });
    const note = document.getElementById('wi-note').value;
    try {
      await O.api('/api/optimize/' + encodeURIComponent(unitId) + '/submit', { json: { x, note } });
      O.say('msg', '');
    } catch (e) {
      O.say('msg', t('opt.failed', { error: e.message + (e.hint ? ' — ' + e.hint : '') }), true);
    }
    refresh();
  }

  async function init() {
    O.setupHeader();
    await O.loadPlant().catch(() => null);
    document.getElementById('opt-propose').addEventListener('click', propose);
    document.getElementById('wi-run').addEventListener('click', whatIf);
    document.getElementById('wi-submit').addEventListener('click', submitOwn);
    document.getElementById('opt-unit').addEventListener('change', (e) => { unitId = e.target.value; renderUnit(); renderProposals(); });
    I.onChange(() => { renderUnit(); renderProposals(); drawWhatIf(); });
    await refresh();
    setInterval(refresh, 3000);
  }

  document.addEventListener('DOMContentLoaded', init);
})();
