// Typeset a page's maths at build time: MathJax 3 (the vendored npm package) in node, CommonHTML
// output, exactly what MathJax would produce in the reader's browser, so the page shows finished
// maths with its first paint and never downloads or runs MathJax. Used by pgbook_reading.py:
//
//   node prerender_maths.js MATHJAX_DIR FONT_URL < request.json > response.json
//
// request.json:  {"config": <the page's MathJax configuration>, "math": [{"tex": ..., "display": bool}]}
// response.json: {"html": [<mjx-container> per formula], "css": <stylesheet for those formulas>,
//                 "errors": [TeX of formulas that MathJax could not typeset]}
//
// Each formula keeps MathJax's assistive MathML (read by screen readers); the stylesheet covers
// only the characters used, and loads the fonts from FONT_URL (the vendored woff files).
"use strict";
const fs = require("fs");
const path = require("path");

const [mathjaxDir, fontURL] = process.argv.slice(2);
const request = JSON.parse(fs.readFileSync(0, "utf8"));
const pageConfig = request.config || {};
const options = Object.assign({}, pageConfig.options || {});
delete options.menuOptions; // static output: no menu

require(path.join(mathjaxDir, "es5", "node-main.js"))
  .init({
    loader: { load: ["adaptors/liteDOM", "input/tex", "output/chtml", "a11y/assistive-mml"] },
    tex: Object.assign({}, pageConfig.tex || {}),
    // In a browser MathJax scales maths to the ex-height of the surrounding text (127 % with
    // Chromium's Linux fonts, about 118 % with Apple's): node cannot measure fonts, so the scale
    // is fixed between the two.
    chtml: { fontURL: fontURL, adaptiveCSS: true, scale: 1.2, matchFontHeight: false },
    options: options,
    startup: { typeset: false },
  })
  .then(async (MathJax) => {
    await MathJax.startup.promise;
    const adaptor = MathJax.startup.adaptor;
    const html = [];
    const errors = [];
    for (const item of request.math) {
      const node = await MathJax.tex2chtmlPromise(item.tex, { display: !!item.display });
      const out = adaptor.outerHTML(node);
      if (out.includes("<mjx-merror")) errors.push(item.tex);
      html.push(out);
    }
    const css = adaptor.textContent(MathJax.chtmlStylesheet());
    process.stdout.write(JSON.stringify({ html, css, errors }));
  })
  .catch((err) => {
    process.stderr.write(String((err && err.stack) || err) + "\n");
    process.exit(1);
  });
