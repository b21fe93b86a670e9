/* Shift handover reports: the ones kept in the event log, and a button to make one now. */
(function () {
  'use strict';
  const I = window.AxI18n;
  const O = window.AxOps;
  const t = (k, v) => I.t(k, v);
  const { el } = O;
  let data = null;

  function render() {
    if (!data) return;
    const other = data.language === 'ko' ? 'en' : 'ko';
    const lines = {};
    ((O.plant() || {}).lines || []).forEach((ln) => { lines[ln.id] = I.pick(ln.name, ln.id); });
    const head = el('tr', {}, [t('reports.shift'), t('reports.period'), 'OEE', t('nav.alarms'), t('reports.open'), t('reports.by'), '']
      .map((h) => el('th', { text: h })));
    const rows = data.reports.map((r) => el('tr', { dataset: { reportId: String(r.id) } },
      el('td', { text: (lines[r.line] || r.line) + ' · ' + (r.shift || '–') }),
      el('td', { text: O.fmtTime(r.from) + ' – ' + O.fmtTime(r.to, false, false) + (r.complete ? '' : ' (' + t('reports.in_progress') + ')') }),
      el('td', { text: O.pct(r.oee) }), el('td', { text: String(r.alarms) }), el('td', { text: String(r.open) }),
      el('td', { text: r.user || t('reports.auto') }),
      el('td', {}, el('a', { href: '/reports/' + r.id + '.html', target: '_blank', class: 'r-html', text: 'HTML' }), ' · ',
        el('a', { href: '/reports/' + r.id + '.pdf', target: '_blank', class: 'r-pdf', text: 'PDF' }), ' · ',
        el('a', { href: '/reports/' + r.id + '.pdf?lang=' + other, target: '_blank', text: other === 'en' ? 'PDF (English)' : 'PDF (한국어)' }))));
    document.getElementById('r-list').replaceChildren(head, ...(rows.length ? rows
      : [el('tr', {}, el('td', { colspan: '7', class: 'muted', text: t('reports.none') }))]));
  }

  async function refresh() {
    try {
      data = await O.api('/api/reports?limit=100');
      render();
    } catch (e) {
      O.say('msg', t('reports.failed', { error: e.message }), true);
    }
  }

  async function make() {
    const btn = document.getElementById('r-make');
    btn.disabled = true;
    try {
      const r = await O.api('/api/reports/shift', { json: { line: document.getElementById('r-line').value } });
      O.say('msg', t('reports.made', { shift: r.shift }));
      document.body.dataset.lastReport = String(r.id);
      await refresh();
    } catch (e) {
      O.say('msg', t('reports.failed', { error: e.message }), true);
    } finally {
      btn.disabled = false;
    }
  }

  async function main() {
    O.setupHeader();
    const plant = await O.loadPlant();
    const sel = document.getElementById('r-line');
    const fill = () => {
      const v = sel.value;
      sel.replaceChildren(...plant.lines.map((ln) => el('option', { value: ln.id, text: I.pick(ln.name, ln.id) })));
      if (v) sel.value = v;
    };
    fill();
    document.getElementById('r-make').addEventListener('click', make);
    I.onChange(() => { fill(); render(); });
    await refresh();
    window.setInterval(refresh, 30000);
  }

  document.addEventListener('DOMContentLoaded', main);
})();
