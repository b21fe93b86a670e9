/* Shared by the know-how page and the dashboard card: a suggested case with why, confidence and
   "did this help?". Needs i18n.js. */
(function () {
  'use strict';
  const I = window.AxI18n;

  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === 'text') n.textContent = v;
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
    if (!resp.ok) throw new Error(window.AxI18n.errorOf(body).error || resp.statusText);
    return body;
  }

  function whyText(why) {
    const parts = [];
    if (why.signals && why.signals.length) parts.push(I.t('kh.why.signals', { list: why.signals.join(', ') }));
    if (why.concepts && why.concepts.length) parts.push(I.t('kh.why.concepts', { list: why.concepts.join(', ') }));
    else if (why.words && why.words.length) parts.push(I.t('kh.why.words', { list: why.words.join(', ') }));
    if (why.same_asset) parts.push(I.t('kh.why.asset'));
    if (why.bilingual !== undefined && why.bilingual >= 0.3) {
      parts.push(I.t('kh.why.meaning', { score: Number(why.bilingual).toFixed(2) }));
    }
    if (why.feedback) parts.push(I.t('kh.why.feedback', { h: why.feedback.helpful, u: why.feedback.not_helpful }));
    return parts.join(' · ');
  }

  /** One suggested case: r = {id, confidence, why, title, cause, action, state}; ctx = feedback context. */
  function caseItem(r, ctx) {
    const note = el('span', { class: 'muted small' });
    const vote = (helpful) => async () => {
      try {
        await api('/api/knowhow/cases/' + encodeURIComponent(r.id) + '/feedback',
          { json: Object.assign({ helpful: helpful }, ctx || {}) });
        note.textContent = I.t('kh.thanks');
      } catch (e) { note.textContent = I.t('kh.failed', { error: e.message }); }
    };
    return el('li', { class: 'kh-item', 'data-case': r.id },
      el('h3', {}, r.title || r.id, ' ',
        el('span', { class: 'kh-conf small' }, I.t('kh.confidence', { pct: Math.round(100 * (r.confidence || 0)) + '%' })),
        r.state && r.state !== 'approved' ? el('span', { class: 'muted small' }, ' · ' + I.t('kh.state.' + r.state)) : null),
      r.cause ? el('div', { class: 'small' }, I.t('kh.cause', { text: r.cause })) : null,
      r.action ? el('div', { class: 'small' }, I.t('kh.action', { text: r.action })) : null,
      el('div', { class: 'kh-why' }, whyText(r.why || {})),
      el('div', { class: 'kh-actions' },
        el('button', { type: 'button', class: 'kh-btn quiet kh-yes', on: { click: vote(true) } }, I.t('kh.helped')),
        el('button', { type: 'button', class: 'kh-btn quiet kh-no', on: { click: vote(false) } }, I.t('kh.not_helped')),
        note));
  }

  window.AxKnowHow = { el, api, caseItem, whyText };
})();
