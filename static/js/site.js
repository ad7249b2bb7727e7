/* Behaviour every page may use, declared in the markup instead of inline handlers:
 * - form[data-confirm]: ask before submitting (the rollback form);
 * - img[data-missing-figure]: a plot that does not exist marks its <figure> "missing";
 * - [data-poll-reload]: while the server is still working on this page (re-matching a photo),
 *   fetch it every 2 s and reload once the marker is gone, instead of a <meta refresh> that
 *   resets scroll and focus on every tick;
 * - details[data-collapse-below]: closed below that width unless data-active says filters are set;
 * - .nav-burger: the menu's disclosure button on narrow screens. */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches && form.matches("form[data-confirm]") && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  function markMissing(img) { var figure = img.closest("figure"); if (figure) figure.classList.add("missing"); }
  document.querySelectorAll("img[data-missing-figure]").forEach(function (img) {
    if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) markMissing(img);  // failed before this ran
    img.addEventListener("error", function () { markMissing(img); });
  });

  // details[data-collapse-below]: open on wide screens, closed on narrower ones unless filters are set
  // (the review queue's eleven filter fields filled two phone screens before the list)
  document.querySelectorAll("details[data-collapse-below]").forEach(function (d) {
    if (window.innerWidth < parseInt(d.dataset.collapseBelow, 10) && d.dataset.active === "0") d.open = false;
  });

  // the menu button below 820 px: a disclosure (aria-expanded) that Escape closes, back on the button
  var burger = document.querySelector(".nav-burger");
  if (burger) {
    var nav = burger.closest(".nav");
    function setOpen(open) {
      burger.setAttribute("aria-expanded", String(open));
      nav.classList.toggle("nav-open", open);
    }
    nav.classList.add("nav-collapsible");
    burger.hidden = false;
    burger.addEventListener("click", function () { setOpen(burger.getAttribute("aria-expanded") !== "true"); });
    nav.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && burger.getAttribute("aria-expanded") === "true") { setOpen(false); burger.focus(); }
    });
  }

  var marker = document.querySelector("[data-poll-reload]");
  if (!marker || !window.fetch) return;
  var delay = parseInt(marker.dataset.pollReload, 10) || 2000;
  function poll() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        if (html.indexOf("data-poll-reload") === -1) { window.location.reload(); return; }
        setTimeout(poll, delay);
      })
      .catch(function () { setTimeout(poll, delay * 4); });
  }
  setTimeout(poll, delay);
})();
