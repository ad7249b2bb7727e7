/* Review shortcuts: 1-5 confirm candidate n, N new individual, R reject (focus reason), S skip, ? help. */
(function () {
  "use strict";
  var help = document.getElementById("shortcut-help");
  var helpBtn = document.getElementById("help-btn");
  var busy = false;

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
    if (/^[1-5]$/.test(key)) {
      var form = document.querySelector('.confirm-form[data-shortcut="' + key + '"]');
      if (form) { e.preventDefault(); submit(form); }
    } else if (key === "n" || key === "N") {
      e.preventDefault();
      submit(document.getElementById("new-form"));
    } else if (key === "r" || key === "R") {
      var sel = document.getElementById("reject-reason");
      if (sel) { e.preventDefault(); sel.focus(); }
    } else if (key === "s" || key === "S") {
      e.preventDefault();
      submit(document.getElementById("skip-form"));
    } else if (key === "?") {
      e.preventDefault();
      toggleHelp();
    } else if (key === "Escape") {
      toggleHelp(false);
    }
  });

  // Enter on the focused reason select submits the reject form.
  var reason = document.getElementById("reject-reason");
  if (reason) reason.addEventListener("keydown", function (e) {
    if (e.key === "Enter") { e.preventDefault(); submit(document.getElementById("reject-form")); }
  });
})();
