/*
 * Loaded between the vendored require.js and the ipywidgets HTML manager (see _config.yml,
 * nb_ipywidgets_js). The manager's bundle is an AMD module named
 * "@jupyter-widgets/html-manager/dist/..."; its webpack public path, which locates its icon
 * fonts, comes from that module's URL. Without this mapping RequireJS resolves the name next to
 * the page (book/@jupyter-widgets/...), a 404 in an offline book.
 */
(function () {
  "use strict";
  if (typeof window.require === "undefined" || typeof window.require.config !== "function") {
    return;
  }
  var root = document.documentElement.dataset.content_root || "";
  window.require.config({
    paths: { "@jupyter-widgets/html-manager/dist": root + "_static/html-manager" },
  });
})();
