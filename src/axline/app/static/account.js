/* Account page: one's own password; for admins, the users with their roles (changes end sessions). */
(function () {
  'use strict';
  const I = window.AxI18n;
  const t = (k, v) => I.t(k, v);
  const $ = (id) => document.getElementById(id);
  let me = null;

  const { api } = window.AxOps;  // the shared page helpers (ops.js)
  const post = (path, body) => api(path, { json: body });
  function say(text, bad) { const m = $('acct-msg'); m.textContent = text; m.className = bad ? 'error' : ''; }
  function cell(tag, text) { const n = document.createElement(tag); n.textContent = text; return n; }

  async function loadUsers() {
    const body = await api('/api/users');
    const table = $('users-table');
    table.replaceChildren();
    const head = document.createElement('tr');
    ['acct.name', 'acct.role', 'acct.state', ''].forEach((k) => head.appendChild(cell('th', k ? t(k) : '')));
    table.appendChild(head);
    body.users.forEach((u) => {
      const tr = document.createElement('tr');
      tr.dataset.user = u.name;
      tr.appendChild(cell('td', u.name + (u.kind === 'service' ? ' (' + t('acct.service') + ')' : '')));
      const td = document.createElement('td');
      const sel = document.createElement('select');
      sel.className = 'role-select';
      me.roles.forEach((r) => { const o = cell('option', t('role.' + r)); o.value = r; sel.appendChild(o); });
      sel.value = u.role;
      sel.addEventListener('change', () => change(u.name, { role: sel.value }));
      td.appendChild(sel);
      tr.appendChild(td);
      tr.appendChild(cell('td', t(u.disabled ? 'acct.disabled' : (u.locked ? 'acct.locked' : 'acct.active'))));
      const act = document.createElement('td');
      const btn = (key, body) => { const b = cell('button', t(key)); b.type = 'button';
        b.dataset.act = key; b.addEventListener('click', () => change(u.name, body)); act.appendChild(b); };
      btn(u.disabled ? 'acct.enable' : 'acct.disable', { disabled: !u.disabled });
      if (u.locked) btn('acct.unlock', { unlock: true });
      tr.appendChild(act);
      table.appendChild(tr);
    });
  }

  async function change(name, body) {
    try { await post('/api/users/' + encodeURIComponent(name), body); say(t('acct.changed', { name: name })); }
    catch (e) { say(e.message, true); }
    loadUsers();
  }

  async function init() {
    me = await api('/api/me');
    $('acct-who').textContent = t('acct.who', { name: me.name, role: t('role.' + me.role) });
    if (me.role === 'admin') {
      $('users-card').hidden = false;
      me.roles.forEach((r) => { const o = cell('option', t('role.' + r)); o.value = r; $('add-role').appendChild(o); });
      loadUsers();
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    I.apply(document);
    $('lang-toggle').addEventListener('click', () => { I.toggle(); I.apply(document); init(); });
    $('pw-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if ($('pw-new').value !== $('pw-again').value) { say(t('acct.differ'), true); return; }
      try {
        await post('/api/me/password', { old: $('pw-old').value, new: $('pw-new').value });
        $('pw-form').reset();
        say(t('acct.pw_done'));
      } catch (e) { say(e.message, true); }
    });
    $('add-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        await post('/api/users', { name: $('add-name').value, role: $('add-role').value, password: $('add-pw').value });
        say(t('acct.added', { name: $('add-name').value }));
        $('add-form').reset();
      } catch (e) { say(e.message, true); }
      loadUsers();
    });
    init();
  });
})();
