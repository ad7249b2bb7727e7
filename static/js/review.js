/* Review shortcuts: a digit acts on the row printed with that number (confirm it, or the
   "new individual" row), N new individual, R reject (then F/Q/D/O picks the reason),
   S skip, U undo, arrows move between candidates (Enter confirms; the selected one is side by side
   with the query, [ ] flip its photos), H heat-map, V crop/original,
   B crop-box editor, 0 reset zoom, ? help. */
(function () {
  "use strict";
  var help = document.getElementById("shortcut-help");
  var helpBtn = document.getElementById("help-btn");
  var busy = false;
  var rejecting = false;
  var cands = Array.prototype.slice.call(document.querySelectorAll(".cand[data-candidate]"));
  var active = -1;
  var viewer = function () { return window.WhaleViewer || {}; };

  function select(i) {
    if (!cands.length) return;
    active = (i + cands.length) % cands.length;
    cands.forEach(function (c, j) { c.classList.toggle("is-active", j === active); });
    cands[active].scrollIntoView({ block: "nearest" });
    if (viewer().compare) viewer().compare(cands[active]);
  }

  // a click on a candidate row (not on its buttons or links) puts it side by side with the query
  document.addEventListener("click", function (e) {
    var row = e.target.closest(".cand[data-candidate]");
    if (row && !e.target.closest("a, button, form, input")) select(cands.indexOf(row));
  });

  function toggleHelp(force) {
    if (!help) return;
    var show = force === undefined ? help.hidden : force;
    help.hidden = !show;
    if (helpBtn) helpBtn.setAttribute("aria-expanded", String(show));
  }
  if (helpBtn) helpBtn.addEventListener("click", function () { toggleHelp(); });

  function submit(form) {
    if (!form || busy) return;
    var btn = form.querySelector("button[type=submit]");
    if (btn && btn.disabled) return;
    busy = true;
    var row = form.closest(".cand");
    if (row) row.classList.add("is-flash");
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    var typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
    if (typing) {
      if (e.key === "Escape") t.blur();
      return;
    }
    var key = e.key;
    if (rejecting) {
      rejecting = false;
      var opt = document.querySelector('#reject-reason option[data-reason-key="' + key.toUpperCase() + '"]');
      if (key === "Enter") opt = document.querySelector("#reject-reason option:checked");
      if (opt) {
        e.preventDefault();
        document.getElementById("reject-reason").value = opt.value;
        submit(document.getElementById("reject-form"));
        return;
      }
    }
    if (key === "ArrowDown" || key === "ArrowRight") {
      e.preventDefault(); select(active + 1);
    } else if (key === "ArrowUp" || key === "ArrowLeft") {
      e.preventDefault(); select(active < 0 ? 0 : active - 1);
    } else if (key === "Enter" && active >= 0) {
      e.preventDefault(); submit(cands[active].querySelector(".confirm-form"));
    } else if (key === "u" || key === "U") {
      e.preventDefault(); submit(document.getElementById("undo-form"));
    } else if (key === "h" || key === "H") {
      e.preventDefault();
      if (viewer().explain) viewer().explain(cands[active < 0 ? 0 : active]);
    } else if (key === "v" || key === "V") {
      e.preventDefault(); if (viewer().toggleView) viewer().toggleView();
    } else if (key === "b" || key === "B") {
      e.preventDefault(); if (viewer().editBox) viewer().editBox();
    } else if (key === "[" || key === "]") {
      e.preventDefault(); if (viewer().flip) viewer().flip(key === "]" ? 1 : -1);
    } else if (key === "0") {
      e.preventDefault(); if (viewer().resetZoom) viewer().resetZoom();
    } else if (/^[1-9]$/.test(key)) {
      var form = document.querySelector('form[data-shortcut="' + key + '"]');
      if (form) { e.preventDefault(); submit(form); }
    } else if (key === "n" || key === "N") {
      e.preventDefault();
      submit(document.getElementById("new-form"));
    } else if (key === "r" || key === "R") {
      var sel = document.getElementById("reject-reason");
      if (sel) { e.preventDefault(); rejecting = true; sel.classList.add("is-armed"); }
    } else if (key === "s" || key === "S") {
      e.preventDefault();
      submit(document.getElementById("skip-form"));
    } else if (key === "?") {
      e.preventDefault();
      toggleHelp();
    } else if (key === "Escape") {
      toggleHelp(false);
      if (viewer().editBox) viewer().editBox(false);
    }
  });

  // Enter on the focused reason select submits the reject form.
  var reason = document.getElementById("reject-reason");
  if (reason) reason.addEventListener("keydown", function (e) {
    if (e.key === "Enter") { e.preventDefault(); submit(document.getElementById("reject-form")); }
  });
  document.body.dataset.shortcuts = "ready";  // keys pressed before this line would be lost
})();
