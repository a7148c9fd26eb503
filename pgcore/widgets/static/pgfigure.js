/* pgfigure.js: the browser side of the book's figures (pgcore.widgets), plain JavaScript.
 *
 * In the book (a classic <script defer>): every `.pg-figure` block that Explorable.display() wrote
 * (sliders, read-out, a first-paint SVG per panel, a JSON payload) is upgraded to live Vega views
 * when it nears the viewport. vega.min.js and vega-lite.min.js, served next to this file, are
 * loaded at that moment only. Slider moves swap in the precomputed tables (deduplicated; the grid
 * is fetched lazily from _static/figdata/<id>.json once the build has moved it out of the page).
 *
 * In a kernel (anywidget, see pgcore/widgets/_live.py): the same code runs as the widget's ES
 * module: Python appends an `export default` that calls globalThis.pgFigure.renderWidget.
 *
 * Fonts, sizes and colours come in each payload from pgcore/widgets/style.py, so the first-paint
 * SVG and the live views match. Light or dark: html[data-theme] (pydata-sphinx-theme) or
 * body[data-jp-theme-light] (JupyterLab); the views are rebuilt when it changes.
 *
 * For tests: each figure root carries data-pg-rendered (a counter of completed redraws) and
 * data-pg-ms (the last redraw's milliseconds from the slider event), and fires a
 * "pg-figure-rendered" event.
 */
(function () {
  "use strict";
  var G = typeof globalThis !== "undefined" ? globalThis : window;
  if (G.pgFigure && G.pgFigure.version) return;

  var here = (typeof document !== "undefined" && document.currentScript && document.currentScript.src) || "";
  var BASE = here ? here.replace(/[^/]*$/, "") : "";
  var libsPromise = null;

  // ---- libraries ----------------------------------------------------------------------------
  function evalUMD(text) {
    // Shadow define/module/exports so the UMD bundle sets globalThis.vega / vegaLite even where
    // RequireJS (classic notebook) or CommonJS globals exist.
    /* eslint-disable-next-line no-new-func */
    new Function("define", "module", "exports", "require", text + "\n//# sourceURL=pg-vendor.js")
      .call(G, undefined, undefined, undefined, undefined);
  }

  function loadScript(url) {
    return new Promise(function (resolve, reject) {
      if (typeof G.define === "function" && G.define.amd) {
        // An AMD loader would capture the UMD bundle: fetch and evaluate it with define hidden.
        fetch(url).then(function (r) {
          if (!r.ok) throw new Error("pgfigure: " + url + " " + r.status);
          return r.text();
        }).then(function (t) { evalUMD(t); resolve(); }, reject);
        return;
      }
      var s = document.createElement("script");
      s.src = url;
      s.async = false;
      s.onload = function () { resolve(); };
      s.onerror = function () { reject(new Error("pgfigure: could not load " + url)); };
      document.head.appendChild(s);
    });
  }

  function loadLibs(base) {
    if (G.vega && G.vegaLite) return Promise.resolve();
    if (!libsPromise) {
      var b = base || BASE;
      libsPromise = loadScript(b + "vega.min.js").then(function () {
        return loadScript(b + "vega-lite.min.js");
      });
    }
    return libsPromise;
  }

  function libsFromText(vegaText, vegaLiteText) {
    if (!(G.vega && G.vega.View)) evalUMD(vegaText);
    if (!G.vegaLite) evalUMD(vegaLiteText);
  }

  // ---- helpers --------------------------------------------------------------------------------
  function isDark() {
    var html = document.documentElement, body = document.body;
    var t = html.getAttribute("data-theme");
    if (t === "dark") return true;
    if (t === "light") return false;
    if (body && body.getAttribute("data-jp-theme-light") === "false") return true;
    if (body && body.getAttribute("data-jp-theme-light") === "true") return false;
    if (html.getAttribute("theme") === "dark" || (body && body.classList.contains("vscode-dark"))) return true;
    return false;
  }

  function rowsOf(table) {
    var cols = Object.keys(table), n = cols.length ? table[cols[0]].length : 0, rows = new Array(n);
    for (var i = 0; i < n; i++) {
      var r = {};
      for (var c = 0; c < cols.length; c++) r[cols[c]] = table[cols[c]][i];
      rows[i] = r;
    }
    return rows;
  }

  function dataNames(spec, out) {
    out = out || {};
    if (Array.isArray(spec)) {
      spec.forEach(function (s) { dataNames(s, out); });
    } else if (spec && typeof spec === "object") {
      if (spec.data && typeof spec.data === "object" && typeof spec.data.name === "string") out[spec.data.name] = true;
      Object.keys(spec).forEach(function (k) { if (k !== "datasets") dataNames(spec[k], out); });
    }
    return out;
  }

  function clone(x) { return JSON.parse(JSON.stringify(x)); }

  function fmtValue(v) {
    if (typeof v === "number" && isFinite(v)) {
      if (v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3)) return v.toExponential(3);
      return String(Number(v.toPrecision(4)));
    }
    return v == null ? "—" : String(v);
  }

  // ---- tooltip (hover read-out) -------------------------------------------------------------
  var tip = null;
  function tooltipHandler(handler, event, item, value) {
    if (!tip) {
      tip = document.createElement("div");
      tip.className = "pg-tooltip";
      tip.setAttribute("role", "tooltip");
      tip.style.cssText = "position:fixed;z-index:1000;pointer-events:none;display:none;";
      document.body.appendChild(tip);
    }
    if (value == null || value === "") {
      tip.style.display = "none";
      return;
    }
    var html = "";
    if (typeof value === "object") {
      Object.keys(value).forEach(function (k) {
        html += "<div><span class=\"pg-tooltip-key\">" + esc(k) + "</span> " + esc(fmtValue(value[k])) + "</div>";
      });
    } else {
      html = "<div>" + esc(String(value)) + "</div>";
    }
    tip.innerHTML = html;
    var dark = isDark();
    tip.classList.toggle("pg-dark", dark);
    // Inline colours, so the read-out also works where pgfigures.css is absent (a notebook).
    tip.style.background = dark ? "#1f242b" : "#ffffff";
    tip.style.color = dark ? "#e6e8eb" : "#1f2328";
    tip.style.border = "1px solid #8a8f98";
    tip.style.borderRadius = "4px";
    tip.style.padding = "4px 8px";
    tip.style.font = "14px/1.35 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    tip.style.boxShadow = "0 2px 6px rgba(0,0,0,.25)";
    tip.style.maxWidth = "min(90vw, 320px)";
    tip.style.display = "block";
    var x = event.clientX, y = event.clientY, w = tip.offsetWidth, h = tip.offsetHeight;
    var vw = document.documentElement.clientWidth, left = x + 12, top = y + 12;
    if (left + w > vw - 4) left = Math.max(4, x - w - 12);
    if (top + h > window.innerHeight - 4) top = Math.max(4, y - h - 12);
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }

  // Vega-Lite's compile warnings (e.g. two layers asking for different legends) go to the
  // figure's data-pg-warnings attribute, where tests read them, not to the reader's console.
  function vlLogger(root) {
    var lvl = 2;
    function note(kind, args) {
      var msg = kind + ": " + Array.prototype.slice.call(args).join(" ");
      var old = root.getAttribute("data-pg-warnings");
      if (!old || old.indexOf(msg) < 0) root.setAttribute("data-pg-warnings", old ? old + " | " + msg : msg);
    }
    return {
      level: function (v) { if (v === undefined) return lvl; lvl = v; return this; },
      error: function () { note("error", arguments); return this; },
      warn: function () { note("warn", arguments); return this; },
      info: function () { return this; },
      debug: function () { return this; },
    };
  }

  // ---- a set of Vega views drawing one figure's panels --------------------------------------
  function Panels(root, panelsEl, payload) {
    this.root = root;
    this.el = panelsEl;
    this.p = payload;
    this.views = [];
    this.tables = {};      // name -> rows
    this.building = null;
    this.width = 0;
    this.dark = null;
    this.rendered = 0;
  }

  Panels.prototype.panelWidth = function () {
    var s = this.p.style, n = this.p.panels.length;
    var W = this.el.clientWidth || (this.root.clientWidth) || s.maxWidth;
    var cols = Math.max(1, Math.min(n, Math.floor((W + s.gap) / (s.minWidth + s.gap))));
    var w = Math.floor((W - (cols - 1) * s.gap) / cols);
    return Math.max(120, Math.min(s.maxWidth, w));
  };

  Panels.prototype.build = function () {
    var self = this, vega = G.vega, vl = G.vegaLite;
    var width = this.panelWidth(), dark = isDark();
    this.width = width;
    this.dark = dark;
    var old = this.views;
    var specs = this.p.panels.map(function (panel) {
      var spec = clone(panel);
      spec.$schema = "https://vega.github.io/schema/vega-lite/v6.json";
      spec.width = width;
      spec.autosize = { type: "fit-x", contains: "padding" };
      spec.config = clone(dark ? self.p.config.dark : self.p.config.light);
      return spec;
    });
    var boxes = Array.prototype.slice.call(this.el.querySelectorAll(":scope > .pg-panel"));
    var made = specs.map(function (spec, k) {
      var holder = document.createElement("div");
      holder.className = "pg-vega";
      var vgSpec = vl.compile(spec, { logger: vlLogger(self.root) }).spec;
      var view = new vega.View(vega.parse(vgSpec), {
        renderer: "svg",
        container: holder,
        hover: true,
        tooltip: tooltipHandler,
        logger: vlLogger(self.root),
      });
      var names = Object.keys(dataNames(spec));
      names.forEach(function (name) {
        if (self.tables[name]) view.data(name, self.tables[name]);
      });
      view._pgNames = names;
      return { view: view, holder: holder, box: boxes[k] };
    });
    this.building = Promise.all(made.map(function (m) { return m.view.runAsync(); })).then(function () {
      made.forEach(function (m) {
        var svg = m.holder.querySelector("svg");
        if (svg) {
          svg.setAttribute("aria-hidden", "true");
          svg.removeAttribute("role");
          svg.setAttribute("focusable", "false");
        }
        if (m.box) {
          m.box.replaceChildren(m.holder);
        } else {
          var box = document.createElement("div");
          box.className = "pg-panel";
          box.appendChild(m.holder);
          self.el.appendChild(box);
        }
      });
      old.forEach(function (v) { v.finalize(); });
      self.views = made.map(function (m) { return m.view; });
      self.root.setAttribute("data-pg-live", "true");
      self.root.setAttribute("data-pg-theme", dark ? "dark" : "light");
      self.root.setAttribute("data-pg-width", String(width));
      self.building = null;
    });
    return this.building;
  };

  // Replace the named tables (name -> rows) in every view that reads them, then run.
  Panels.prototype.setTables = function (rowsByName, t0) {
    var self = this;
    Object.keys(rowsByName).forEach(function (n) { self.tables[n] = rowsByName[n]; });
    var wait = this.building || Promise.resolve();
    return wait.then(function () {
      return Promise.all(self.views.map(function (view) {
        var touched = false;
        view._pgNames.forEach(function (n) {
          if (rowsByName[n]) { view.data(n, rowsByName[n]); touched = true; }
        });
        return touched ? view.runAsync() : null;
      }));
    }).then(function () {
      self.rendered += 1;
      var ms = t0 != null ? (performance.now() - t0) : null;
      self.root.setAttribute("data-pg-rendered", String(self.rendered));
      if (ms != null) self.root.setAttribute("data-pg-ms", ms.toFixed(1));
      self.root.dispatchEvent(new CustomEvent("pg-figure-rendered", { detail: { ms: ms, count: self.rendered } }));
    });
  };

  Panels.prototype.refreshIfNeeded = function () {
    if (!this.views.length) return;
    var w = this.panelWidth(), d = isDark();
    if (w !== this.width || d !== this.dark) this.build();
  };

  var allPanels = [];
  function watchAll() {
    if (watchAll.done) return;
    watchAll.done = true;
    var refresh = function () { allPanels.forEach(function (p) { p.refreshIfNeeded(); }); };
    var obs = new MutationObserver(refresh);
    obs.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme", "theme"] });
    if (document.body) obs.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "class"] });
    var timer = null;
    var later = function () { clearTimeout(timer); timer = setTimeout(refresh, 150); };
    if (typeof ResizeObserver !== "undefined") {
      var ro = new ResizeObserver(later);
      watchAll.ro = ro;
    }
    window.addEventListener("resize", later);
  }
  function track(panels) {
    watchAll();
    allPanels.push(panels);
    if (watchAll.ro) watchAll.ro.observe(panels.el);
  }

  // ---- the book: a .pg-figure block ---------------------------------------------------------
  function BookFigure(root) {
    this.root = root;
    var data = root.querySelector("script.pg-figure-data");
    this.p = JSON.parse(data.textContent);
    this.inputs = Array.prototype.slice.call(root.querySelectorAll('input[type="range"][data-slider]'));
    this.readoutEl = root.querySelector(".pg-figure-readout");
    this.panelsEl = root.querySelector(".pg-figure-panels");
    this.panels = new Panels(root, this.panelsEl, this.p);
    this.grid = this.p.grid || null;
    this.gridPromise = null;
    this.rowsCache = {};
    this.current = null;
    this.mounted = null;
    this.pending = null;
    this.players = [];
    this.enableControls();
  }

  BookFigure.prototype.index = function () {
    var idx = 0, sl = this.p.sliders;
    this.inputs.forEach(function (inp, k) { idx = idx * sl[k].values.length + parseInt(inp.value, 10); });
    return idx;
  };

  BookFigure.prototype.enableControls = function () {
    var self = this;
    this.inputs.forEach(function (inp, k) {
      inp.disabled = false;
      inp.addEventListener("input", function () { self.onInput(k); });
      var btn = inp.parentNode.querySelector("button.pg-play");
      if (btn) {
        btn.disabled = false;
        self.players[k] = { btn: btn, timer: null };
        btn.setAttribute("aria-pressed", "false");
        btn.addEventListener("click", function () { self.togglePlay(k); });
      }
    });
  };

  BookFigure.prototype.onInput = function (k) {
    var t0 = performance.now();
    var inp = this.inputs[k], s = this.p.sliders[k], i = parseInt(inp.value, 10);
    var text = s.labels[i];
    inp.setAttribute("aria-valuetext", text);
    var out = inp.parentNode.querySelector("output");
    if (out) out.textContent = text;
    var self = this;
    if (this.pending == null) {
      this.pending = t0;
      var go = function () {
        var started = self.pending;
        self.pending = null;
        self.mount().then(function () { return self.show(started); });
      };
      if (typeof requestAnimationFrame !== "undefined") requestAnimationFrame(go); else setTimeout(go, 0);
    }
  };

  BookFigure.prototype.togglePlay = function (k) {
    var pl = this.players[k], inp = this.inputs[k], self = this;
    var label = this.p.sliders[k].label;
    if (pl.timer) {
      clearInterval(pl.timer);
      pl.timer = null;
      pl.btn.textContent = "▶";
      pl.btn.setAttribute("aria-pressed", "false");
      pl.btn.setAttribute("aria-label", "Play: step through " + label);
      return;
    }
    var max = parseInt(inp.max, 10);
    var step = function () {
      var v = parseInt(inp.value, 10);
      if (v >= max) { self.togglePlay(k); return; }
      inp.value = String(v + 1);
      self.onInput(k);
    };
    if (parseInt(inp.value, 10) >= max) { inp.value = "0"; self.onInput(k); }
    pl.btn.textContent = "❚❚";
    pl.btn.setAttribute("aria-pressed", "true");
    pl.btn.setAttribute("aria-label", "Pause");
    pl.timer = setInterval(step, this.p.playMs || 600);
  };

  BookFigure.prototype.loadGrid = function () {
    if (this.grid) return Promise.resolve(this.grid);
    if (!this.gridPromise) {
      var self = this;
      var url = new URL(this.p.src, document.baseURI).href;
      this.gridPromise = fetch(url).then(function (r) {
        if (!r.ok) throw new Error("pgfigure: " + url + " " + r.status);
        return r.json();
      }).then(function (g) { self.grid = g; return g; });
    }
    return this.gridPromise;
  };

  BookFigure.prototype.rows = function (ti) {
    if (!this.rowsCache[ti]) this.rowsCache[ti] = rowsOf(this.grid.tables[ti]);
    return this.rowsCache[ti];
  };

  BookFigure.prototype.mount = function () {
    if (this.mounted) return this.mounted;
    var self = this;
    var first = {};
    Object.keys(this.p.first.tables).forEach(function (n) { first[n] = rowsOf(self.p.first.tables[n]); });
    this.panels.tables = first;
    this.current = null;
    this.mounted = Promise.all([loadLibs(), this.p.sliders.length ? this.loadGrid() : null])
      .then(function () { return self.panels.build(); })
      .then(function () {
        track(self.panels);
        self.root.setAttribute("data-pg-mounted", "true");
        if (self.p.sliders.length) return self.show(null);
      })
      .catch(function (e) {
        self.root.setAttribute("data-pg-error", String(e && e.message || e));
        if (G.console) console.warn(e);
      });
    return this.mounted;
  };

  BookFigure.prototype.show = function (t0) {
    if (!this.grid) return Promise.resolve();
    var idx = this.index(), names = this.p.names, row = this.grid.index[idx], self = this;
    var changed = {};
    names.forEach(function (n, j) {
      if (!self.current || self.current[j] !== row[j]) changed[n] = self.rows(row[j]);
    });
    this.current = row.slice();
    var text = this.grid.readouts[idx];
    if (this.readoutEl && this.readoutEl.textContent !== text) this.readoutEl.textContent = text;
    this.panelsEl.setAttribute("aria-label", (this.p.alt + " " + text).trim());
    return this.panels.setTables(changed, t0);
  };

  // ---- mounting in the book -------------------------------------------------------------------
  function mountAll(rootEl) {
    var blocks = (rootEl || document).querySelectorAll(".pg-figure:not([data-pg-init])");
    var figs = [];
    blocks.forEach(function (el) {
      el.setAttribute("data-pg-init", "true");
      try { figs.push(new BookFigure(el)); } catch (e) { el.setAttribute("data-pg-error", String(e)); }
    });
    if (!figs.length) return figs;
    if (typeof IntersectionObserver === "undefined") {
      figs.forEach(function (f) { f.mount(); });
      return figs;
    }
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (!e.isIntersecting) return;
        io.unobserve(e.target);
        e.target._pgFigure.mount();
      });
    }, { rootMargin: "800px 0px" });
    figs.forEach(function (f) { f.root._pgFigure = f; io.observe(f.root); });
    return figs;
  }

  // ---- the kernel: anywidget render ---------------------------------------------------------
  function renderWidget(ctx) {
    var model = ctx.model, el = ctx.el;
    var payload = {
      panels: model.get("panels"),
      config: model.get("config"),
      style: model.get("figstyle"),
      alt: model.get("alt"),
    };
    var root = document.createElement("div");
    root.className = "pg-figure pg-figure-widget";
    var panelsEl = document.createElement("div");
    panelsEl.className = "pg-figure-panels";
    panelsEl.setAttribute("role", "img");
    panelsEl.style.cssText = "display:flex;flex-wrap:wrap;gap:" + payload.style.gap + "px";
    var readout = document.createElement("p");
    readout.className = "pg-figure-readout";
    readout.setAttribute("aria-live", "polite");
    root.appendChild(panelsEl);
    root.appendChild(readout);
    el.appendChild(root);

    var panels = new Panels(root, panelsEl, payload);
    var lib = model.get("lib") || {};
    var seen = {};  // table name -> its JSON: only tables that changed are swapped into the views
    function tablesRows() {
      var t = model.get("tables") || {}, out = {};
      Object.keys(t).forEach(function (n) {
        var sig = JSON.stringify(t[n]);
        if (seen[n] !== sig) { seen[n] = sig; out[n] = rowsOf(t[n]); }
      });
      return out;
    }
    function setReadout() {
      var text = model.get("readout") || "";
      readout.textContent = text;
      panelsEl.setAttribute("aria-label", ((payload.alt || "") + " " + text).trim());
    }
    setReadout();
    panels.tables = tablesRows();
    var ready = new Promise(function (resolve) {
      // Wait until the element is in the page, so that it has a width.
      var tries = 0;
      (function wait() {
        if (el.isConnected && (el.clientWidth > 0 || tries > 40)) resolve(); else { tries++; setTimeout(wait, 25); }
      })();
    }).then(function () {
      if (lib.vega) libsFromText(lib.vega, lib.vegaLite);
      return panels.build();
    }).then(function () {
      track(panels);
      root.setAttribute("data-pg-mounted", "true");
      return panels.setTables(panels.tables, null);
    }).catch(function (e) {
      root.setAttribute("data-pg-error", String(e && e.message || e));
      readout.textContent = "Figure error: " + (e && e.message || e);
    });
    function onTables() {
      var t0 = performance.now();
      var rows = tablesRows();
      setReadout();
      ready.then(function () { return panels.setTables(rows, t0); });
    }
    model.on("change:tables", onTables);
    model.on("change:readout", setReadout);
    return function () {
      model.off("change:tables", onTables);
      model.off("change:readout", setReadout);
      panels.views.forEach(function (v) { v.finalize(); });
      var i = allPanels.indexOf(panels);
      if (i >= 0) allPanels.splice(i, 1);
    };
  }

  G.pgFigure = {
    version: 1,
    mountAll: mountAll,
    renderWidget: renderWidget,
    loadLibs: loadLibs,
    isDark: isDark,
  };

  if (typeof document !== "undefined" && document.currentScript) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", function () { mountAll(); });
    } else {
      mountAll();
    }
  }
})();
