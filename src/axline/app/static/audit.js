/* The audit page (admins): newest entries, chain verification, export links. */
(function () {
  'use strict';
  const I = window.AxI18n;
  const t = (k, v) => I.t(k, v);
  const $ = (id) => document.getElementById(id);
  const COLS = ['ts', 'who', 'role', 'action', 'target', 'old', 'new', 'result', 'from'];

  function cell(tag, text) {
    const n = document.createElement(tag);
    n.textContent = text === null || text === undefined ? '' : (typeof text === 'object' ? JSON.stringify(text) : String(text));
    return n;
  }

  const { api } = window.AxOps;  // the shared page helpers (ops.js)

  async function load() {
    try {
      const body = await api('/api/audit?limit=500');
      const table = $('audit-table');
      table.replaceChildren();
      const head = document.createElement('tr');
      COLS.forEach((c) => head.appendChild(cell('th', t('audit.col.' + c))));
      table.appendChild(head);
      body.entries.forEach((e) => {
        const tr = document.createElement('tr');
        tr.dataset.seq = e.seq;
        COLS.forEach((c) => tr.appendChild(cell('td', e[c])));
        table.appendChild(tr);
      });
      const st = body.status;
      $('audit-size').textContent = t('audit.size', { mb: (st.bytes / 1048576).toFixed(1),
        max: (st.max_bytes / 1048576).toFixed(0), state: st.state });
    } catch (e) {
      $('audit-verdict').textContent = t('audit.failed', { error: e.message });
    }
  }

  async function verify() {
    const res = await api('/api/audit/verify');
    $('audit-verdict').textContent = res.ok ? t('audit.ok', { n: res.entries })
      : t('audit.broken', { problems: res.problems.join('; ') });
  }

  document.addEventListener('DOMContentLoaded', () => {
    I.apply(document);
    $('lang-toggle').addEventListener('click', () => { I.toggle(); I.apply(document); load(); });
    $('audit-verify').addEventListener('click', verify);
    load();
  });
})();
