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

  async function refresh() {
    try {
      if (!ready) {  // the case base opens a few seconds after the service starts
        const st = await K.api('/api/knowhow/status');
        const card = document.querySelector('.knowhow-card');
        if (card) card.hidden = !st.enabled;
        if (!st.enabled || !st.ready) return;
        ready = true;
      }
      render(await K.api('/api/knowhow/alarms'));
    } catch (e) { /* the card keeps its last content; the server logs why */ }
  }

  document.addEventListener('DOMContentLoaded', () => {
    if (!document.getElementById('kh-alarms')) return;
    I.onChange(() => { last = ''; refresh(); });
    refresh();
    setInterval(refresh, REFRESH_MS);
  });
})();
