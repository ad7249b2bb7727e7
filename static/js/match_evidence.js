// The review page's "matched points" view: a PNG of RootSIFT-verified keypoint pairs, loaded on demand
// by a candidate's button or by K for the active candidate, shown in that candidate's side-by-side pane (kept apart from review.js / viewer.js on purpose).
(function () {
  "use strict";

  function toggle(cand) {
    if (!cand) return;
    var btn = cand.querySelector("[data-points-url]");
    var pane = document.querySelector('#compare [data-compare-for="' + cand.dataset.candidate + '"]');
    var fig = pane && pane.querySelector("figure.points");
    if (!btn || !fig) return;
    fig.hidden = !fig.hidden;
    var img = fig.querySelector("[data-points-img]");
    if (fig.hidden || img.getAttribute("src")) return;
    btn.disabled = true;
    img.addEventListener("load", function () { btn.disabled = false; });
    img.addEventListener("error", function () {
      btn.disabled = false;
      fig.querySelector("figcaption").textContent = "The matched points could not be drawn.";
    });
    img.src = btn.dataset.pointsUrl;
    if (!fig.hidden) fig.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("click", function (e) {
    var t = e.target.closest("[data-points-url]");
    if (t) toggle(t.closest(".cand"));
  });

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.closest("input, textarea, select, [contenteditable]")) return;
    if (e.key !== "k" && e.key !== "K") return;
    toggle(document.querySelector(".cand.is-active") || document.querySelector(".cand[data-candidate]"));
  });
})();
