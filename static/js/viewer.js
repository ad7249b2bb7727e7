/* Image viewers on the review page: wheel zoom, drag pan, crop ⇄ original switch, a crop-box editor
   on the original (coordinates scaled to original pixels), the query and the selected candidate side by
   side (flipping through its photos) and the on-demand "Why?" heat-map, also laid over that query.
   Exposes window.WhaleViewer for the keyboard shortcuts in review.js. */
(function () {
  "use strict";

  function setup(viewer) {
    var img = viewer.querySelector("img");
    if (!img) return;
    var state = { scale: 1, x: 0, y: 0, drag: null };
    viewer._state = state;
    function apply() {  // every layer moves together: a heat-map overlay stays on the fluke it explains
      var t = "translate(" + state.x + "px," + state.y + "px) scale(" + state.scale + ")";
      Array.prototype.forEach.call(viewer.querySelectorAll("img"), function (layer) { layer.style.transform = t; });
    }
    viewer._reset = function () { state.scale = 1; state.x = 0; state.y = 0; apply(); };
    viewer.addEventListener("wheel", function (e) {
      e.preventDefault();
      var rect = viewer.getBoundingClientRect();
      var cx = e.clientX - rect.left, cy = e.clientY - rect.top;
      var factor = e.deltaY < 0 ? 1.2 : 1 / 1.2;
      var next = Math.min(12, Math.max(1, state.scale * factor));
      var k = next / state.scale;
      state.x = cx - (cx - state.x) * k;
      state.y = cy - (cy - state.y) * k;
      state.scale = next;
      if (next === 1) { state.x = 0; state.y = 0; }
      apply();
    }, { passive: false });
    viewer.addEventListener("mousedown", function (e) {
      if (viewer.classList.contains("is-editing") || e.button !== 0) return;
      e.preventDefault();
      state.drag = { x: e.clientX - state.x, y: e.clientY - state.y };
      viewer.classList.add("is-panning");
    });
    window.addEventListener("mousemove", function (e) {
      if (!state.drag) return;
      state.x = e.clientX - state.drag.x;
      state.y = e.clientY - state.drag.y;
      apply();
    });
    window.addEventListener("mouseup", function () { state.drag = null; viewer.classList.remove("is-panning"); });
    viewer.addEventListener("dblclick", function () { viewer._reset(); });
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-viewer]"), setup);

  // ------------------------------------------------------------------ query: crop ⇄ original, box editor
  var query = document.getElementById("query-viewer");
  var boxForm = document.getElementById("box-form");
  var rectEl = query ? query.querySelector(".box-rect") : null;
  var qimg = query ? query.querySelector("img") : null;

  function naturalScale() {
    // image pixels per CSS pixel of the (possibly zoomed) displayed image
    var r = qimg.getBoundingClientRect();
    var nw = qimg.naturalWidth || Number(query.dataset.naturalWidth) || r.width;
    var nh = qimg.naturalHeight || Number(query.dataset.naturalHeight) || r.height;
    return { r: r, sx: nw / r.width, sy: nh / r.height };
  }

  function drawBox(b) {
    if (!rectEl || !b) { if (rectEl) rectEl.hidden = true; return; }
    var s = naturalScale(), v = query.getBoundingClientRect();
    rectEl.style.left = (s.r.left - v.left + b[0] / s.sx) + "px";
    rectEl.style.top = (s.r.top - v.top + b[1] / s.sy) + "px";
    rectEl.style.width = ((b[2] - b[0]) / s.sx) + "px";
    rectEl.style.height = ((b[3] - b[1]) / s.sy) + "px";
    rectEl.hidden = false;
  }

  function storedBox() {
    var raw = query && query.dataset.box;
    return raw ? raw.split(",").map(Number) : null;
  }

  function setMode(mode) {
    if (!query) return;
    var src = mode === "crop" ? query.dataset.cropSrc : query.dataset.originalSrc;
    if (!src) return;
    query.dataset.mode = mode;
    qimg.src = src;
    if (query._reset) query._reset();
    var c = document.querySelector("[data-caption-crop]"), o = document.querySelector("[data-caption-original]");
    if (c) c.hidden = mode !== "crop";
    if (o) o.hidden = mode === "crop";
    if (rectEl) rectEl.hidden = true;
    if (mode === "original") qimg.addEventListener("load", function once() {
      qimg.removeEventListener("load", once);
      drawBox(pending || storedBox());
    });
  }

  function toggleView() { if (query) setMode(query.dataset.mode === "crop" ? "original" : "crop"); }

  var pending = null, start = null;
  function editBox(on) {
    if (!query || !boxForm) return;
    var enable = on === undefined ? !query.classList.contains("is-editing") : on;
    query.classList.toggle("is-editing", enable);
    boxForm.hidden = !enable;
    if (enable && query.dataset.mode !== "original") setMode("original");
    if (!enable) { pending = null; drawBox(query.dataset.mode === "original" ? storedBox() : null); }
  }

  if (query) {
    query.addEventListener("mousedown", function (e) {
      if (!query.classList.contains("is-editing") || e.button !== 0) return;
      e.preventDefault();
      var s = naturalScale();
      start = [(e.clientX - s.r.left) * s.sx, (e.clientY - s.r.top) * s.sy];
    });
    window.addEventListener("mousemove", function (e) {
      if (!start) return;
      var s = naturalScale();
      var p = [(e.clientX - s.r.left) * s.sx, (e.clientY - s.r.top) * s.sy];
      var nw = qimg.naturalWidth, nh = qimg.naturalHeight;
      function cl(v, hi) { return Math.round(Math.min(hi, Math.max(0, v))); }
      pending = [cl(Math.min(start[0], p[0]), nw), cl(Math.min(start[1], p[1]), nh),
                 cl(Math.max(start[0], p[0]), nw), cl(Math.max(start[1], p[1]), nh)];
      drawBox(pending);
    });
    window.addEventListener("mouseup", function () {
      if (!start) return;
      start = null;
      if (!pending || !boxForm) return;
      ["x0", "y0", "x1", "y1"].forEach(function (k, i) { boxForm.elements[k].value = pending[i]; });
      var ok = pending[2] - pending[0] >= 8 && pending[3] - pending[1] >= 8;
      boxForm.querySelector("button[type=submit]").disabled = !ok;
      var out = boxForm.querySelector("[data-box-readout]");
      if (out) out.textContent = "Box " + pending.join(", ") + " (original pixels)";
    });
  }

  function resetZoom() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-viewer]"), function (v) { if (v._reset) v._reset(); });
  }

  // ------------------------------------------------------------------ side by side: query and one candidate
  var overlay = document.querySelector("[data-heat-overlay]");

  function showHeat(cand, url) {
    // the heat-map over the query in "Side by side", at the query's size; url null hides it
    if (!overlay) return;
    var caption = document.querySelector("[data-heat-caption]");
    overlay.hidden = !url;
    if (url) {
      overlay.src = url;
      var who = cand.querySelector(".cand-info a");
      document.querySelector("[data-heat-for]").textContent = who ? who.textContent.trim() : "";
    }
    if (caption) caption.hidden = !url;
  }

  function compare(cand) {
    // show the candidate ``cand`` (a .cand row) next to the query
    if (!cand) return;
    var id = cand.dataset.candidate;
    Array.prototype.forEach.call(document.querySelectorAll("[data-compare-for]"), function (pane) {
      pane.hidden = pane.dataset.compareFor !== id;
    });
    var fig = cand.querySelector("figure.explain");
    var heat = fig && !fig.hidden ? fig.querySelector("[data-explain-img]").getAttribute("src") : null;
    showHeat(cand, heat);
  }

  function flip(delta, pane, index) {
    // the candidate's photo ``index`` (or the current one + delta, wrapping) in its side-by-side pane
    pane = pane || document.querySelector("[data-compare-for]:not([hidden])");
    if (!pane) return;
    var buttons = Array.prototype.slice.call(pane.querySelectorAll("[data-compare-photo]"));
    if (!buttons.length) return;
    var current = buttons.findIndex(function (b) { return b.classList.contains("is-current"); });
    var next = index !== undefined ? index : (current + delta + buttons.length) % buttons.length;
    var img = pane.querySelector("[data-compare-img]");
    img.src = buttons[next].dataset.comparePhoto;
    img.classList.toggle("is-crop", Boolean(buttons[next].dataset.compareCrop));
    buttons.forEach(function (b, j) { b.classList.toggle("is-current", j === next); });
    pane.querySelector("[data-compare-index]").textContent = String(next + 1);
    var viewerEl = pane.querySelector("[data-viewer]");
    if (viewerEl && viewerEl._reset) viewerEl._reset();
  }

  // ------------------------------------------------------------------ "Why?" heat-maps, loaded on demand
  function explain(cand) {
    if (!cand) return;
    var btn = cand.querySelector("[data-explain-url]");
    var fig = cand.querySelector("figure.explain");
    if (!btn || !fig) return;
    var img = fig.querySelector("[data-explain-img]");
    compare(cand);
    if (!fig.hidden) { fig.hidden = true; showHeat(cand, null); return; }
    fig.hidden = false;
    // the overlay reuses the row's image once it has loaded (one computation, then the browser cache)
    if (img.getAttribute("src") && img.complete) showHeat(cand, btn.dataset.explainUrl);
    else img.addEventListener("load", function () { if (!fig.hidden) showHeat(cand, btn.dataset.explainUrl); },
                              { once: true });
    if (!img.getAttribute("src")) {
      btn.disabled = true;
      btn.classList.add("is-loading");
      img.addEventListener("load", function () { btn.disabled = false; btn.classList.remove("is-loading"); });
      img.addEventListener("error", function () {
        btn.disabled = false; btn.classList.remove("is-loading");
        fig.querySelector("figcaption").textContent = "The heat-map could not be computed.";
      });
      img.src = btn.dataset.explainUrl;
    }
  }

  document.addEventListener("click", function (e) {
    var t = e.target.closest("[data-action], [data-explain-url]");
    if (!t) return;
    if (t.dataset.explainUrl) explain(t.closest(".cand"));
    else if (t.dataset.comparePhoto) {
      var pane = t.closest("[data-compare-for]");
      flip(0, pane, Array.prototype.indexOf.call(pane.querySelectorAll("[data-compare-photo]"), t));
    }
    else if (t.dataset.action === "compare-prev") flip(-1, t.closest("[data-compare-for]"));
    else if (t.dataset.action === "compare-next") flip(1, t.closest("[data-compare-for]"));
    else if (t.dataset.action === "toggle-view") toggleView();
    else if (t.dataset.action === "edit-box") editBox();
    else if (t.dataset.action === "cancel-box") editBox(false);
    else if (t.dataset.action === "reset-zoom") resetZoom();
  });

  window.WhaleViewer = { toggleView: toggleView, editBox: editBox, resetZoom: resetZoom, explain: explain,
                         compare: compare, flip: flip };
})();
