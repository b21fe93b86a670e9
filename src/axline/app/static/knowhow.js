/* The know-how page: record what you did (pre-filled from ?event=ID), find cases, review drafts, gaps. */
(function () {
  'use strict';
  const I = window.AxI18n;
  const K = window.AxKnowHow;
  const el = K.el;
  const api = K.api;
  let eventId = null;
  const RANK = { viewer: 0, operator: 1, engineer: 2, approver: 3, admin: 4 };
  let role = 'viewer';
  const may = (r) => (RANK[role] || 0) >= RANK[r];

  function say(text, bad) {
    const n = document.getElementById('msg');
    n.textContent = text || '';
    n.hidden = !text;
    n.classList.toggle('bad', !!bad);
  }

  async function prefill() {
    const raw = new URLSearchParams(window.location.search).get('event');
    const card = document.getElementById('record-card');
    if (raw === null) { card.hidden = !new URLSearchParams(window.location.search).has('new'); return; }
    eventId = parseInt(raw, 10);
    card.hidden = false;
    try {
      const p = await api('/api/knowhow/prefill?event_id=' + eventId);
      document.getElementById('record-event').textContent = I.t('kh.from_event', { id: eventId, message: p.event.message || p.event.code });
      const sigs = p.fields.tags || [];
      document.getElementById('record-signals').textContent = sigs.length ? I.t('kh.signals', { signals: sigs.join(', ') }) : '';
      const f = document.getElementById('case-form');
      if (!f.symptom.value) f.symptom.value = p.fields.symptom || '';
    } catch (e) { say(I.t('kh.failed', { error: e.message }), true); }
  }

  async function save(ev) {
    ev.preventDefault();
    const f = ev.target;
    const body = { title: f.title.value, symptom: f.symptom.value, cause: f.cause.value, action: f.action.value,
      outcome: f.outcome.value, parts: f.parts.value };
    if (f.repair_min.value !== '') body.repair_min = Number(f.repair_min.value);
    if (eventId !== null) body.event_id = eventId;
    const btn = document.getElementById('case-save');
    btn.disabled = true;
    try {
      const c = await api('/api/knowhow/cases', { json: body });
      const file = f.photo.files && f.photo.files[0];
      if (file) {
        await api('/api/knowhow/cases/' + encodeURIComponent(c.id) + '/photos?name=' + encodeURIComponent(file.name),
          { method: 'POST', headers: { 'Content-Type': file.type }, body: file });
      }
      say(I.t('kh.saved', { id: c.id }));
      f.reset();
      loadDrafts();
    } catch (e) { say(I.t('kh.failed', { error: e.message }), true); }
    btn.disabled = false;
  }

  function resultItem(r) {
    const c = r.case || {};
    return K.caseItem({ id: r.id, confidence: r.confidence, why: r.why, state: c.state,
      title: c.title || (c.symptom || '').slice(0, 80), cause: c.cause, action: c.action },
    { query: document.getElementById('search-q').value });
  }

  async function search(ev) {
    if (ev) ev.preventDefault();
    const q = document.getElementById('search-q').value.trim();
    const list = document.getElementById('results');
    list.replaceChildren();
    if (!q) return;
    try {
      const res = await api('/api/knowhow/cases?top=5&q=' + encodeURIComponent(q));
      const good = res.results.filter((r) => r.confidence >= 0.5);
      if (!good.length) list.appendChild(el('li', { class: 'muted' }, I.t('kh.none')));
      res.results.forEach((r) => list.appendChild(resultItem(r)));
    } catch (e) { say(I.t('kh.failed', { error: e.message }), true); }
  }

  async function loadDrafts() {
    const list = document.getElementById('drafts');
    try {
      const res = await api('/api/knowhow/cases?state=draft&top=50');
      list.replaceChildren();
      if (!res.results.length) list.appendChild(el('li', { class: 'muted' }, I.t('kh.no_drafts')));
      res.results.forEach((r) => {
        const c = r.case;
        const approve = !may('approver') ? null : el('button', { type: 'button', class: 'kh-btn kh-approve', on: { click: async () => {
          try { await api('/api/knowhow/cases/' + encodeURIComponent(c.id) + '/approve', { json: {} });
            say(I.t('kh.approved', { id: c.id })); loadDrafts();
          } catch (e) { say(I.t('kh.failed', { error: e.message }), true); }
        } } }, I.t('kh.approve'));
        list.appendChild(el('li', { class: 'kh-item', 'data-case': c.id },
          el('h3', {}, c.title || c.symptom.slice(0, 80)),
          el('div', { class: 'small' }, c.symptom),
          c.cause ? el('div', { class: 'small' }, I.t('kh.cause', { text: c.cause })) : null,
          c.action ? el('div', { class: 'small' }, I.t('kh.action', { text: c.action })) : null,
          el('div', { class: 'muted small' }, (c.asset || '') + ' · ' + c.author + ' · v' + c.version),
          el('div', { class: 'kh-actions' }, approve)));
      });
    } catch (e) { say(I.t('kh.failed', { error: e.message }), true); }
  }

  async function loadGaps() {
    const table = document.getElementById('gaps');
    document.getElementById('gaps-card').hidden = !may('engineer');
    if (!may('engineer')) return;
    try {
      const res = await api('/api/knowhow/gaps');
      table.replaceChildren(el('tr', {}, el('th', {}, I.t('kh.gap.when')), el('th', {}, I.t('kh.gap.query')),
        el('th', {}, I.t('kh.gap.reason'))));
      if (!res.gaps.length) table.appendChild(el('tr', {}, el('td', { colspan: 3, class: 'muted' }, I.t('kh.gap.none'))));
      res.gaps.forEach((g) => table.appendChild(el('tr', {},
        el('td', {}, new Date(g.ts / 1e6).toLocaleString(I.locale())), el('td', {}, g.query), el('td', {}, g.reason))));
    } catch (e) { say(I.t('kh.failed', { error: e.message }), true); }
  }

  document.addEventListener('DOMContentLoaded', () => {
    const btn = document.getElementById('lang-toggle');
    if (btn) btn.addEventListener('click', () => I.toggle());
    I.apply();
    I.onChange(() => { loadDrafts(); loadGaps(); });
    document.getElementById('case-form').addEventListener('submit', save);
    document.getElementById('search-form').addEventListener('submit', search);
    document.getElementById('search-q').placeholder = I.t('kh.search_hint');
    prefill();
    api('/api/knowhow/status').then((st) => { role = st.role || 'viewer'; }, () => {})
      .then(() => { loadDrafts(); loadGaps(); });
  });
})();
