/* Alarms: the operator's list (acknowledge with a note, shelve with a reason and an end, unshelve)
   and the alarm performance report against the ISA-18.2 benchmarks. */
(function () {
  'use strict';
  const I = window.AxI18n;
  const O = window.AxOps;
  const t = (k, v) => I.t(k, v);
  const { el } = O;
  const OPEN = ['active', 'returned', 'acknowledged', 'shelved'];
  const RANK = { active: 0, returned: 1, acknowledged: 2, shelved: 3, suppressed: 4, cleared: 5 };
  const PRIO = { high: 0, medium: 1, low: 2 };
  let last = null;
  let busy = false;

  /** The alarm in words: the catalog's text for its code when there is one, else its message. */
  function alarmText(a) {
    const d = a.data || {};
    const key = 'event.' + a.code;
    const sig = (s) => (s ? O.signalName(a.source, s) : '');
    const vars = Object.assign({}, d, { asset: O.nameOf(a.source), top: sig(d.top), score: O.num(d.score, 1),
      signal: sig(d.signal || d.tag) });
    if (typeof d.value === 'number') vars.value = Number(d.value.toPrecision(6));
    return I.has(key) ? t(key, vars) : O.nameOf(a.source) + ' — ' + (a.message || a.code);
  }

  const codeText = (code) => (I.has('alarm.code.' + code) ? t('alarm.code.' + code) : code);

  function row(a) {
    const li = el('li', { class: 'alarm prio-' + a.priority + ' st-' + a.state,
      dataset: { alarmId: String(a.id), state: a.state, priority: a.priority } });
    li.appendChild(el('div', { class: 'alarm-head' },
      el('span', { class: 'prio-badge', text: t('prio.' + a.priority) }),
      el('span', { class: 'alarm-state', text: t('astate.' + a.state) }),
      el('span', { class: 'alarm-time muted', text: O.fmtTime(a.ts) + ' · ' + O.fmtDuration(a.duration_s) })));
    li.appendChild(el('div', { class: 'alarm-msg', text: alarmText(a) }));
    const d = a.data || {};
    if (d.ack) {
      li.appendChild(el('div', { class: 'alarm-ack muted small',
        text: t('alarms.acked_by', { user: d.ack.user, time: O.fmtTime(d.ack.ts, false, false) }) + (d.ack.note ? ' — ' + d.ack.note : '') },
        d.ack.case_id !== undefined && d.ack.case_id !== null ? el('span', { class: 'case-ref', text: ' · ' + t('alarms.case', { id: d.ack.case_id }) }) : null));
    }
    // what was done can become a know-how case, prefilled from this alarm
    li.appendChild(el('a', { class: 'kh-link small', href: '/knowhow?event=' + encodeURIComponent(a.id), text: t('alarms.record_case') }));
    if (a.state === 'shelved') li.appendChild(el('div', { class: 'alarm-shelved muted small',
      text: t('alarms.shelved_until', { time: O.fmtTime(a.shelved_until), reason: d.shelve.reason, user: d.shelve.user }) }));
    if (a.suppressed) li.appendChild(el('div', { class: 'muted small', text: t('alarms.suppressed', { why: t('state.' + a.suppressed) }) }));
    const notes = (d.actions || []).filter((x) => x.action === 'note');
    notes.forEach((n) => li.appendChild(el('div', { class: 'alarm-note small', text: n.user + ': ' + n.note })));
    if (a.state === 'suppressed' || a.state === 'cleared') return li;
    const note = el('input', { type: 'text', class: 'note-input', maxlength: '500', 'aria-label': t('alarms.note'),
      placeholder: t(a.ack ? 'alarms.note' : 'alarms.note_optional') });
    const acts = el('div', { class: 'alarm-actions' }, note);
    if (a.ack !== 'acknowledged') {
      acts.appendChild(el('button', { type: 'button', class: 'btn btn-ack', dataset: { act: 'ack' }, text: t('alarms.ack'),
        on: { click: () => act(a.id, 'ack', { note: note.value }) } }));
    } else {
      acts.appendChild(el('button', { type: 'button', class: 'btn', dataset: { act: 'note' }, text: t('alarms.add_note'),
        on: { click: () => act(a.id, 'note', { note: note.value }) } }));
    }
    if (a.state === 'shelved') {
      acts.appendChild(el('button', { type: 'button', class: 'btn', dataset: { act: 'unshelve' }, text: t('alarms.unshelve'),
        on: { click: () => act(a.id, 'unshelve', {}) } }));
    } else {
      const mins = el('select', { class: 'shelve-minutes', 'aria-label': t('alarms.shelve_for') },
        [15, 30, 60, 120, 480].map((m) => el('option', { value: String(m), text: t('alarms.minutes', { n: m }) })));
      mins.value = '30';
      acts.appendChild(mins);
      acts.appendChild(el('button', { type: 'button', class: 'btn', dataset: { act: 'shelve' }, text: t('alarms.shelve'),
        on: { click: () => {
          if (!note.value.trim()) { O.say('msg', t('alarms.reason_needed'), true); note.focus(); return; }
          act(a.id, 'shelve', { minutes: Number(mins.value), reason: note.value });
        } } }));
    }
    li.appendChild(acts);
    return li;
  }

  async function act(id, action, body) {
    busy = true;
    try {
      await O.api('/api/alarms/' + id + '/' + action, { json: body });
      O.say('msg', '');
    } catch (e) {
      O.say('msg', t('alarms.failed', { error: e.message }), true);
    } finally {
      busy = false;
    }
    await refresh(true);
  }

  function render() {
    if (!last) return;
    const all = document.getElementById('show-all').checked;
    const items = last.alarms.filter((a) => all || OPEN.includes(a.state))
      .sort((a, b) => (RANK[a.state] - RANK[b.state]) || (PRIO[a.priority] - PRIO[b.priority]) || (b.ts - a.ts));
    const list = document.getElementById('alarm-list');
    list.replaceChildren(...(items.length ? items.map(row) : [el('li', { class: 'muted', text: t('alarms.none') })]));
    const c = last.counts;
    document.getElementById('alarm-counts').textContent = t('alarms.counts',
      { active: c.active, returned: c.returned, acknowledged: c.acknowledged, shelved: c.shelved });
  }

  async function refresh(force) {
    // do not redraw under the operator's fingers while they type a note
    const typing = document.activeElement && document.activeElement.classList.contains('note-input') &&
      document.activeElement.value;
    if (busy || (typing && !force)) return;
    try {
      last = await O.api('/api/alarms?limit=500');
      render();
    } catch (e) {
      O.say('msg', t('alarms.failed', { error: e.message }), true);
    }
  }

  function table(id, head, rows) {
    const tb = document.getElementById(id);
    tb.replaceChildren(el('tr', {}, head.map((h) => el('th', { text: h }))),
      ...(rows.length ? rows.map((r) => el('tr', {}, r.map((c) => (c instanceof Node ? el('td', {}, c) : el('td', { text: String(c) })))))
        : [el('tr', {}, el('td', { colspan: String(head.length), class: 'muted', text: t('perf.none') }))]));
  }

  async function perf() {
    const hours = Number(document.getElementById('perf-period').value);
    const now = last ? last.now : Date.now() * 1e6;
    let rep;
    try {
      rep = await O.api('/api/alarms/performance?from=' + (now - hours * 3600e9) + '&to=' + now);
    } catch (e) {
      O.say('msg', t('alarms.failed', { error: e.message }), true);
      return;
    }
    const lines = {};
    ((O.plant() || {}).lines || []).forEach((ln) => { lines[ln.id] = I.pick(ln.name, ln.id); });
    table('perf-positions', [t('perf.position'), t('perf.alarms'), t('perf.per_hour'), t('perf.rating'), t('perf.peak10'), t('perf.floods'), t('perf.flood_time')],
      rep.positions.map((p) => [lines[p.position] || p.position, p.alarms, O.num(p.per_hour, 1),
        el('span', { class: 'rating rating-' + p.rating, dataset: { rating: p.rating }, text: t('rating.' + p.rating) }),
        p.peak_10min, p.floods.length, O.num(p.flood_time_pct, 1) + '%']));
    table('perf-top', ['#', t('perf.alarm'), t('perf.count'), t('perf.share')],
      rep.top.map((r, i) => [i + 1, O.nameOf(r.source) + ' — ' + codeText(r.code), r.count, O.num(r.share_pct, 1) + '%']));
    table('perf-chatter', [t('perf.alarm'), t('perf.bursts')], rep.chattering.map((r) => [O.nameOf(r.source) + ' — ' + codeText(r.code), r.bursts]));
    table('perf-stale', [t('perf.alarm'), t('perf.active_h')], rep.stale.map((r) => [O.nameOf(r.source) + ' — ' + codeText(r.code), O.num(r.active_h, 1)]));
  }

  async function main() {
    O.setupHeader();
    try { await O.loadPlant(); } catch (e) { O.say('msg', e.message, true); }
    await refresh(true);
    await perf();
    document.getElementById('show-all').addEventListener('change', render);
    document.getElementById('perf-period').addEventListener('change', perf);
    I.onChange(() => { render(); perf(); });
    window.setInterval(refresh, 3000);
    window.setInterval(perf, 60000);
  }

  document.addEventListener('DOMContentLoaded', main);
})();
