/* Inspection review: recent verdicts with heat maps, operator feedback, rates before/after. */
(function () {
  'use strict';
  const I = window.AxI18n;
  const t = (k, v) => I.t(k, v);
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === 'text') n.textContent = v;
      else if (k === 'dataset') Object.assign(n.dataset, v);
      else if (v !== null && v !== undefined) n.setAttribute(k, v);
    });
    kids.filter(Boolean).forEach((c) => n.appendChild(c));
    return n;
  }

  async function api(path, opts) {
    const resp = await fetch(path, Object.assign({ credentials: 'same-origin' }, opts || {}));
    if (resp.status === 401) { window.location.assign('/login'); throw new Error('login required'); }
    const body = await resp.json();
    if (!resp.ok) throw new Error(window.AxI18n.errorOf(body).error || resp.statusText);
    return body;
  }

  const pct = (x) => (x === null || x === undefined ? '–' : (100 * x).toFixed(1) + '%');
  const safe = (u) => (typeof u === 'string' && u.startsWith('/') && !u.startsWith('//') ? u : null);

  function renderStats(vision) {
    const rows = [el('tr', {},
      el('th', { text: t('insp.camera') }), el('th', { text: t('insp.inspected') }),
      el('th', { text: t('insp.rejects') }), el('th', { text: t('insp.latency') }),
      el('th', { text: t('insp.frr') }), el('th', { text: t('insp.escape') }))];
    Object.values(vision.cameras || {}).forEach((c) => {
      const n = (c.counts.pass || 0) + (c.counts.reject || 0);
      const lat = c.latency_ms ? c.latency_ms.p50 + ' / ' + c.latency_ms.p99 + ' ms' : '–';
      const r = c.rates;
      const two = (key) => (r ? pct(r.before[key]) + ' → ' + pct(r.after[key]) : '–');
      rows.push(el('tr', { dataset: { camera: c.camera } },
        el('td', { text: c.camera }), el('td', { text: String(n) }), el('td', { text: String(c.counts.reject || 0) }),
        el('td', { text: lat }), el('td', { class: 'frr', text: two('false_reject_rate') }),
        el('td', { class: 'escape', text: two('escape_rate') })));
      if (r) {
        rows.push(el('tr', {}, el('td', { colspan: '6', class: 'muted',
          text: t('insp.reviewed', { good: r.n_good, defect: r.n_defect }) + ' · ' + t('insp.before') + ' → ' + t('insp.after') })));
      }
    });
    $('insp-stats').replaceChildren(...rows);
  }

  function card(ev) {
    const d = ev.data || {};
    const verdict = d.verdict === 'reject' ? 'reject' : 'pass';
    const img = safe(d.heatmap_url);
    const li = el('li', { class: 'verdict verdict-' + verdict, dataset: { eventId: String(ev.id), verdict: verdict } },
      img ? el('img', { class: 'heatmap', src: img, alt: '', loading: 'lazy' }) : null,
      el('div', { class: 'verdict-label', text: t('insp.verdict.' + verdict) }),
      el('div', { class: 'muted', text: t('insp.score', { score: Number(d.score).toFixed(3), threshold: Number(d.threshold).toFixed(3) }) }));
    if (ev.ack) {
      li.appendChild(el('div', { class: 'ack ack-' + ev.ack, text: I.has('events.ack.' + ev.ack) ? t('events.ack.' + ev.ack) : ev.ack }));
      return li;
    }
    const send = async (v) => {
      li.querySelectorAll('button').forEach((b) => { b.disabled = true; });
      await api('/api/events/' + ev.id + '/feedback', {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ verdict: v }),
      });
      refresh();
    };
    const yes = el('button', { type: 'button', class: 'fb fb-confirm', dataset: { verdict: 'confirmed' }, text: t('insp.confirm') });
    const no = el('button', { type: 'button', class: 'fb fb-overrule', dataset: { verdict: 'overruled' }, text: t('insp.overrule') });
    yes.addEventListener('click', () => send('confirmed'));
    no.addEventListener('click', () => send('overruled'));
    li.appendChild(el('div', { class: 'feedback' }, yes, no));
    return li;
  }

  async function refresh() {
    const [vision, events] = await Promise.all([api('/api/vision'), api('/api/events?kind=inspection,defect&limit=48')]);
    renderStats(vision);
    const list = events.events.map(card);
    $('verdicts').replaceChildren(...(list.length ? list : [el('li', { class: 'muted', text: t('insp.none') })]));
  }

  document.addEventListener('DOMContentLoaded', () => {
    I.apply();
    $('lang-toggle').addEventListener('click', () => { I.toggle(); refresh(); });
    refresh();
    setInterval(refresh, 3000);
  });
})();
