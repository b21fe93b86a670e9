/* The dashboard's "known fixes" card: recent alarms with the approved cases suggested for each (why,
   confidence, "did this help?") and a "record what you did" link. Refreshes every few seconds. */
(function () {
  'use strict';
  const I = window.AxI18n;
  const K = window.AxKnowHow;
  const el = K.el;
  const REFRESH_MS = 3000;
  let last = '';

  function render(data) {
    const list = document.getElementById('kh-alarms');
    if (!list) return;
    const key = JSON.stringify(data.alarms.map((a) => [a.event.id, a.suggestions.map((s) => [s.id, s.confidence])])) + I.getLang();
    if (key === last) return;
    last = key;
    list.replaceChildren();
    if (!data.alarms.length) { list.appendChild(el('li', { class: 'muted small' }, I.t('kh.card_none'))); return; }
    data.alarms.slice(0, 6).forEach((a) => {
      const ev = a.event;
      const cases = el('ol', { class: 'kh-list' });
      a.suggestions.forEach((s) => cases.appendChild(K.caseItem(s, { event_id: ev.id, asset: ev.source })));
      if (!a.suggestions.length) cases.appendChild(el('li', { class: 'muted small' }, I.t('kh.no_suggestion')));
      list.appendChild(el('li', { class: 'kh-alarm', 'data-event': ev.id },
        el('div', { class: 'small' }, ev.message || ev.code, ' ',
          el('a', { href: '/knowhow?event=' + ev.id, class: 'kh-record' }, I.t('kh.record_link'))),
        cases));
    });
  }

  let ready = false;
  let role = null;  // the caller's role, from /api/knowhow/status

  async function refresh() {
    try {
      if (!ready) {  // the case base opens a few seconds after the service starts
        const st = await K.api('/api/knowhow/status');
        role = st.role || '';
        const card = document.querySelector('.knowhow-card');
        if (card) card.hidden = !st.enabled;
        if (!st.enabled || !st.ready) return;
        ready = true;
      }
      render(await K.api('/api/knowhow/alarms'));
    } catch (e) { /* the card keeps its last content; the server logs why */ }
  }

  // operating know-how: advice per setpoint with the past episodes it comes from (operators and up)
  const OP_REFRESH_MS = 30000;
  let opData = null;

  function nameOf(names, signal) {
    const n = names && names[signal];
    return (n && (n[I.getLang()] || n.en)) || signal;
  }

  function num(v) { return typeof v === 'number' ? String(Math.round(v * 100) / 100) : String(v); }

  function renderOperating() {
    const box = document.getElementById('kh-op');
    const list = document.getElementById('kh-operating');
    if (!box || !list || !opData) return;
    box.hidden = !opData.configured;
    list.replaceChildren();
    const items = [];
    opData.assets.forEach((a) => a.advice.forEach((it) => items.push([a, it])));
    if (!items.length) { list.appendChild(el('li', { class: 'muted small' }, I.t('kh.op.none'))); return; }
    items.forEach(([a, it]) => {
      const unit = it.unit || '';
      const what = it.advice === 'hold' ? I.t('kh.op.hold', { value: num(it.current), unit })
        : I.t('kh.op.' + it.advice, { change: num(Math.abs(it.change)), unit, value: num(it.suggested) });
      const eps = el('ol', { class: 'kh-op-episodes small' });
      it.evidence.forEach((e) => {
        const moves = Object.entries(e.moves).map(([s, [o, n]]) => `${nameOf(a.signals, s)} ${num(o)} → ${num(n)}`).join(', ');
        const outcome = (e.outcome_top || []).map(([s, d]) => `${nameOf(a.signals, s)} ${d >= 0 ? '+' : ''}${num(d)}`).join(', ');
        eps.appendChild(el('li', null, I.t('kh.op.episode', { when: new Date(e.ts / 1e6).toLocaleString(I.getLang()), moves, outcome })));
      });
      list.appendChild(el('li', { class: 'kh-item kh-op-item', 'data-signal': it.signal, 'data-advice': it.advice },
        el('div', null, el('strong', null, `${it.name ? (it.name[I.getLang()] || it.name.en) : it.signal}: `), what),
        el('div', { class: 'kh-why' }, I.t('kh.op.agree', { pct: Math.round(it.agreement * 100) + '%', n: it.neighbours,
          list: it.based_on.map((s) => nameOf(a.signals, s)).join(', ') })),
        el('details', null, el('summary', { class: 'small' }, I.t('kh.op.evidence', { n: it.evidence.length })), eps)));
    });
  }

  const OPERATING_ROLES = ['operator', 'engineer', 'approver', 'admin'];

  async function refreshOperating() {
    if (role === null) { try { role = (await K.api('/api/knowhow/status')).role || ''; } catch (e) { return; } }
    if (!OPERATING_ROLES.includes(role)) return;  // the server refuses the advice below operator
    try {
      opData = await K.api('/api/knowhow/operating');
      renderOperating();
    } catch (e) {  // below the operator role, or not learnt yet: the section stays hidden
      const box = document.getElementById('kh-op');
      if (box) box.hidden = true;
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    if (!document.getElementById('kh-alarms')) return;
    I.onChange(() => { last = ''; refresh(); renderOperating(); });
    refresh();
    setInterval(refresh, REFRESH_MS);
    refreshOperating();
    setInterval(refreshOperating, OP_REFRESH_MS);
  });
})();
