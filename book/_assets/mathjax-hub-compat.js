/*
 * The ipywidgets HTML manager (@jupyter-widgets/html-manager 1.x) typesets widget labels with
 * MathJax 2's `MathJax.Hub.Queue(["Typeset", MathJax.Hub, el])`. The book uses MathJax 3, which
 * has no `Hub`, so every page with a widget would log "Cannot read properties of undefined
 * (reading 'Queue')". This shim provides that one call on top of MathJax 3's typesetPromise.
 *
 * Load order (see _config.yml): after Sphinx's inline `window.MathJax = {...}` configuration,
 * before the deferred MathJax script. MathJax 3 moves the configuration object to
 * MathJax.config when it starts, so the shim is installed twice: on the configuration object
 * (for calls made before MathJax has loaded) and again in startup.ready (after it has).
 */
(function () {
  "use strict";
  function typeset(el) {
    var mj = window.MathJax;
    if (!mj || typeof mj.typesetPromise !== "function") {
      return; // not loaded yet: MathJax typesets the whole page when it starts
    }
    var ready = (mj.startup && mj.startup.promise) || Promise.resolve();
    if (el && el.classList) {
      // widget labels sit inside the page's `document` container, which the MyST MathJax
      // configuration ignores; mark the label itself as maths to process.
      el.classList.add("mathjax_process");
    }
    ready.then(function () {
      return mj.typesetPromise(el ? [el] : undefined);
    }).catch(function (err) {
      console.warn("MathJax typeset of a widget label failed:", err);
    });
  }
  var Hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var cmd = arguments[i];
        if (Array.isArray(cmd) && cmd[0] === "Typeset") {
          typeset(cmd[2]);
        } else if (typeof cmd === "function") {
          cmd();
        }
      }
    },
    Config: function () {},
    Typeset: function (el) { typeset(el); },
  };
  var cfg = (window.MathJax = window.MathJax || {});
  if (cfg.version) {
    // MathJax 3 is already running
    if (!cfg.Hub) cfg.Hub = Hub;
    return;
  }
  cfg.Hub = Hub;
  cfg.startup = cfg.startup || {};
  var userReady = cfg.startup.ready;
  cfg.startup.ready = function () {
    if (typeof userReady === "function") {
      userReady();
    } else {
      window.MathJax.startup.defaultReady();
    }
    window.MathJax.Hub = Hub;
  };
})();
