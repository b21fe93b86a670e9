/* axline dashboard text in Korean and English. Every visible string goes through AxI18n.t(); the texts
   themselves live in axline/i18n/{en,ko}.json, served as /i18n/catalog.js. */
(function () {
  'use strict';

  const STORAGE_KEY = 'axline.lang';

  // the tables come from /i18n/catalog.js (axline/i18n/en.json and ko.json), loaded just before this file
  const TABLES = window.AxCatalog || { en: {}, ko: {} };
  const en = TABLES.en;
  const listeners = [];

  function initialLang() {
    let saved = null;
    try { saved = window.localStorage.getItem(STORAGE_KEY); } catch (e) { saved = null; }
    if (saved === 'ko' || saved === 'en') return saved;
    const nav = (navigator.languages && navigator.languages[0]) || navigator.language || 'en';
    return nav.toLowerCase().startsWith('ko') ? 'ko' : 'en';
  }

  let lang = initialLang();

  /** Text for key in the current language; {name} placeholders filled from vars. */
  function t(key, vars) {
    const table = TABLES[lang];
    let text = Object.prototype.hasOwnProperty.call(table, key) ? table[key] : en[key];
    if (text === undefined) return key;
    if (vars) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
    return text;
  }

  function has(key) { return Object.prototype.hasOwnProperty.call(TABLES[lang], key); }

  /** A {en: ..., ko: ...} name in the current language (falls back to English, then any). */
  function pick(names, fallback) {
    if (names == null) return fallback || '';
    if (typeof names === 'string') return names;
    return names[lang] || names.en || Object.values(names)[0] || fallback || '';
  }

  function apply(root) {
    const scope = root || document;
    scope.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    scope.querySelectorAll('[data-i18n-title]').forEach((el) => { el.title = t(el.dataset.i18nTitle); });
    scope.querySelectorAll('[data-i18n-aria-label]').forEach((el) => {
      el.setAttribute('aria-label', t(el.dataset.i18nAriaLabel));
    });
    document.documentElement.lang = lang;
  }

  function setLang(next) {
    if (next !== 'ko' && next !== 'en') throw new Error('language must be "ko" or "en", got ' + next);
    lang = next;
    try { window.localStorage.setItem(STORAGE_KEY, next); } catch (e) { /* private mode: not remembered */ }
    apply();
    listeners.forEach((fn) => fn(lang));
  }

  function locale() { return lang === 'ko' ? 'ko-KR' : 'en-GB'; }

  /** A server error answer ({error, hint, code, params}) in the current language: the catalog's text for
      its code when there is one, else the server's English text. Returns {error, hint}. */
  function errorOf(body) {
    if (!body || typeof body !== 'object') return { error: '', hint: '' };
    const p = body.params || {};
    if (body.code && has(body.code)) {
      return { error: t(body.code, p), hint: has(body.code + '.hint') ? t(body.code + '.hint', p) : (body.hint || '') };
    }
    return { error: body.error || '', hint: body.hint || '' };
  }

  // a page's own catalog file adds its keys: AxI18n.extend({ en: {...}, ko: {...} })
  function extend(tables) {
    Object.keys(tables).forEach((l) => { if (TABLES[l]) Object.assign(TABLES[l], tables[l]); });
  }

  window.AxI18n = {
    extend: extend,
    errorOf: errorOf,
    t: t,
    has: has,
    pick: pick,
    apply: apply,
    setLang: setLang,
    getLang: () => lang,
    locale: locale,
    toggle: () => setLang(lang === 'ko' ? 'en' : 'ko'),
    onChange: (fn) => listeners.push(fn),
    tables: TABLES,
  };
})();
