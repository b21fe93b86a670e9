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

  /* the proof-of-value report: a baseline period against a later one, built by the service */
  const DAY = 86400000;
  function plantDay(ms) {  // YYYY-MM-DD in plant time
    return new Intl.DateTimeFormat('en-CA', { timeZone: O.plantTz(), year: 'numeric', month: '2-digit', day: '2-digit' })
      .format(new Date(ms));
  }

  function valueUrl(format) {
    const q = new URLSearchParams();
    ['v-baseline', 'v-period', 'v-lang', 'v-electricity', 'v-gas', 'v-investment'].forEach((id) => {
      const input = document.getElementById(id);
      const v = input.value.trim();
      if (v) q.set(input.name, v);
    });
    q.set('format', format);
    return '/api/reports/value?' + q.toString();
  }

  async function showValue(ev) {
    ev.preventDefault();
    const btn = document.getElementById('v-show');
    const msg = document.getElementById('v-msg');
    const out = document.getElementById('v-report');
    const links = [document.getElementById('v-open'), document.getElementById('v-pdf')];
    btn.disabled = true;
    msg.textContent = t('reports.value.building');
    try {
      const page = await O.api(valueUrl('html'));
      // the page's own style sheet applies only when it is opened alone (this page's policy refuses inline style)
      const doc = new DOMParser().parseFromString(page.replace(/<style>[\s\S]*?<\/style>/g, ''), 'text/html');
      doc.querySelectorAll('script, style').forEach((n) => n.remove());
      out.replaceChildren(...Array.from(doc.body.childNodes).map((n) => document.importNode(n, true)));
      out.lang = document.getElementById('v-lang').value;
      links[0].href = valueUrl('html');
      links[1].href = valueUrl('pdf');
      links.forEach((a) => { a.hidden = false; });
      msg.textContent = t('reports.value.shown');
      document.body.dataset.valueReport = out.lang;
    } catch (e) {
      out.replaceChildren();
      links.forEach((a) => { a.hidden = true; });
      msg.textContent = '';
      O.say('msg', t('reports.value.failed', { error: e.message + (e.hint ? ' (' + e.hint + ')' : '') }), true);
    } finally {
      btn.disabled = false;
    }
  }

  function setupValue(plant) {
    const now = Date.now();
    document.getElementById('v-period').value = plantDay(now - 7 * DAY) + '..' + plantDay(now);
    document.getElementById('v-baseline').value = plantDay(now - 14 * DAY) + '..' + plantDay(now - 7 * DAY);
    document.getElementById('v-lang').value = I.getLang() || plant.language || 'ko';
    document.getElementById('v-form').addEventListener('submit', showValue);
  }

  async function main() {
    O.setupHeader();
    const plant = await O.loadPlant();
    setupValue(plant);
    const sel = document.getElementById('r-line');
    const fill = () => {
      const v = sel.value;
      sel.replaceChildren(...plant.lines.map((ln) => el('option', { value: ln.id, text: I.pick(ln.name, ln.id) })));
      if (v) sel.value = v;
    };
    fill();
    document.getElementById('r-make').addEventListener('click', make);
    I.onChange((lang) => { fill(); render(); document.getElementById('v-lang').value = lang; });
    await refresh();
    window.setInterval(refresh, 30000);
  }

  document.addEventListener('DOMContentLoaded', main);
})();
