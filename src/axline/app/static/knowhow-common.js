/* Shared by the know-how page and the dashboard card: a suggested case with why, confidence and
   "did this help?". Needs i18n.js and ops.js. */
(function () {
  'use strict';
  const I = window.AxI18n;

  const { el, api } = window.AxOps;  // the shared page helpers (ops.js)

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
