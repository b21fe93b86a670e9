/* Inspection review: recent verdicts with heat maps, operator feedback, rates before/after. */
(function () {
  'use strict';
  const I = window.AxI18n;
  const t = (k, v) => I.t(k, v);
  const $ = (id) => document.getElementById(id);

  const { el, api } = window.AxOps;  // the shared page helpers (ops.js)

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
    renderHealth(vision);
  }

  // the health strip: one chip per check and camera; a warning shows its advice
  function renderHealth(vision) {
    const lang = I.getLang();
    const blocks = [];
    Object.values(vision.cameras || {}).forEach((c) => {
      const h = c.health || { checks: {} };
      const chips = Object.entries(h.checks).map(([kind, ch]) => el('span', {
        class: 'health-chip health-' + ch.status, dataset: { check: kind, status: ch.status },
        title: ch.status === 'warn' && ch.advice ? (ch.advice[lang] || ch.advice.en) : t('insp.health.' + ch.status),
        text: (ch.name && (ch.name[lang] || ch.name.en)) || kind }));
      const advice = Object.entries(h.checks).filter(([, ch]) => ch.status === 'warn' && ch.advice)
        .map(([kind, ch]) => el('li', { class: 'health-advice', dataset: { check: kind }, text: ch.advice[lang] || ch.advice.en }));
      blocks.push(el('div', { class: 'health-strip', dataset: { camera: c.camera } },
        el('strong', { text: c.camera + ' · ' + t('insp.health') }), ...chips,
        advice.length ? el('ul', {}, ...advice) : null));
    });
    $('insp-health').replaceChildren(...blocks);
  }

  let cameraTypes = {};
  // what an operator has typed in a type form, by event id: the page redraws every few seconds
  const drafts = new Map();

  function typeLabel(names) {
    const lang = I.getLang();
    return names ? (names[lang] || names.en) : '';
  }

  // a confirmed reject can be given its defect type: an existing one, or a new one named in both languages
  function typeForm(ev) {
    const d = ev.data || {};
    const names = (cameraTypes[d.camera] || {}).names || {};
    const select = el('select', { class: 'type-select' },
      ...Object.entries(names).map(([id, n]) => el('option', { value: id, text: typeLabel(n) })),
      el('option', { value: '__new', text: t('insp.type.new') }));
    const id = el('input', { class: 'type-id', placeholder: t('insp.type.id'), maxlength: '40' });
    const en = el('input', { class: 'type-en', placeholder: t('insp.type.en'), maxlength: '60' });
    const ko = el('input', { class: 'type-ko', placeholder: t('insp.type.ko'), maxlength: '60' });
    const fresh = el('span', { class: 'type-new' }, id, en, ko);
    const msg = el('span', { class: 'type-msg muted' });
    const draft = drafts.get(ev.id);
    if (draft) {
      if ([...select.options].some((o) => o.value === draft.select)) select.value = draft.select;
      id.value = draft.id; en.value = draft.en; ko.value = draft.ko; msg.textContent = draft.msg;
    }
    const keep = () => {
      drafts.set(ev.id, { select: select.value, id: id.value, en: en.value, ko: ko.value, msg: msg.textContent });
    };
    const sync = () => { fresh.hidden = select.value !== '__new'; };
    select.addEventListener('change', () => { sync(); keep(); });
    [id, en, ko].forEach((input) => input.addEventListener('input', keep));
    sync();
    const btn = el('button', { type: 'button', class: 'fb type-set', text: t('insp.type.set') });
    btn.addEventListener('click', async () => {
      const isNew = select.value === '__new';
      const body = isNew ? { type: id.value.trim(), names: { en: en.value.trim(), ko: ko.value.trim() } } : { type: select.value };
      btn.disabled = true;
      try {
        await api('/api/events/' + ev.id + '/defect-type', {
          method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
        drafts.delete(ev.id);
        refresh();
      } catch (e) { msg.textContent = e.message; btn.disabled = false; keep(); }
    });
    return el('div', { class: 'type-form' }, select, fresh, btn, msg);
  }

  // the tiles the part was inspected in, over its heat map: the worst one marked, those over the threshold red
  function tileGrid(d) {
    const g = d.tile_grid;
    if (!g || !Array.isArray(g.boxes) || !Array.isArray(g.size) || !(g.size[0] > 0 && g.size[1] > 0)) return null;
    const [w, h] = g.size;
    const worst = g.scores.indexOf(Math.max(...g.scores));
    const pc = (v, of) => (100 * v / of).toFixed(2) + '%';
    return el('div', { class: 'tile-grid', dataset: { tiles: String(g.boxes.length) } },
      ...g.boxes.map((b, i) => {
        const tile = el('span', {
          class: 'tile' + (i === worst ? ' worst' : '') + (g.scores[i] > d.threshold ? ' over' : ''),
          dataset: { tile: String(i) }, title: t('insp.tile', { n: i + 1, score: Number(g.scores[i]).toFixed(3) }) });
        // (through the style object: the page's content policy refuses inline style attributes)
        Object.assign(tile.style, { left: pc(b[0], w), top: pc(b[1], h), width: pc(b[2], w), height: pc(b[3], h) });
        return tile;
      }));
  }

  function card(ev) {
    const d = ev.data || {};
    const verdict = d.verdict === 'reject' ? 'reject' : 'pass';
    const img = safe(d.heatmap_url);
    const li = el('li', { class: 'verdict verdict-' + verdict, dataset: { eventId: String(ev.id), verdict: verdict } },
      img ? el('div', { class: 'heat-wrap' }, el('img', { class: 'heatmap', src: img, alt: '', loading: 'lazy' }),
        tileGrid(d)) : null,
      el('div', { class: 'verdict-label', text: t('insp.verdict.' + verdict) }),
      el('div', { class: 'muted', text: t('insp.score', { score: Number(d.score).toFixed(3), threshold: Number(d.threshold).toFixed(3) }) }));
    if (d.worst_tile) {
      li.appendChild(el('div', { class: 'muted tiles', dataset: { tiles: String(d.tiles) },
        text: t(d.tiles > 1 ? 'insp.tiles' : 'insp.tiles.one', { n: d.tiles, score: Number(d.worst_tile.score).toFixed(3) }) }));
    }
    if (d.defect_type) {
      const dt = d.defect_type;
      li.appendChild(el('div', { class: 'defect-type' + (dt.known ? '' : ' unknown'), dataset: { type: dt.type || '' },
        text: t('insp.type', { type: typeLabel(dt.label), confidence: Math.round(100 * dt.confidence) }) }));
    }
    if (ev.ack) {
      li.appendChild(el('div', { class: 'ack ack-' + ev.ack, text: I.has('events.ack.' + ev.ack) ? t('events.ack.' + ev.ack) : ev.ack }));
      const isDefect = (verdict === 'reject' && ev.ack === 'confirmed') || (verdict === 'pass' && ev.ack === 'overruled');
      if (d.defect_type_label) {
        li.appendChild(el('div', { class: 'type-labelled', dataset: { type: d.defect_type_label.type },
          text: t('insp.type.labelled', { type: typeLabel(d.defect_type_label.names), user: d.defect_type_label.user }) }));
      } else if (isDefect) {
        li.appendChild(typeForm(ev));
      }
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
    cameraTypes = {};
    Object.values(vision.cameras || {}).forEach((c) => { cameraTypes[c.camera] = c.types || {}; });
    renderStats(vision);
    // drafts only of the verdicts still listed (bounded by the list)
    const shown = new Set(events.events.map((ev) => ev.id));
    [...drafts.keys()].forEach((id) => { if (!shown.has(id)) drafts.delete(id); });
    // an operator typing in a type form keeps the field (and its focus) until leaving it
    const active = document.activeElement;
    if (active && active.closest && active.closest('#verdicts .type-form') && !active.disabled) return;
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
