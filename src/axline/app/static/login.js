/* Login page: language only; the form posts to /login without script. */
(function () {
  'use strict';
  const I = window.AxI18n;
  function init() {
    I.apply();
    document.getElementById('lang-toggle').addEventListener('click', () => I.toggle());
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
