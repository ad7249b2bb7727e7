/* The import page's live progress: while the import runs, read progress.json every 2 s and update the
 * bar and counts; reload once it is done (the rows table then shows every row's final status). */
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box || !box.dataset.progressUrl || !window.fetch) return;
  function set(name, value) {
    var el = box.querySelector('[data-field="' + name + '"]');
    if (el) el.textContent = value;
  }
  function show(p) {
    var done = p.imported + p.duplicates + p.failed;
    var percent = p.total ? Math.round((100 * done) / p.total) : 100;
    box.querySelector('[data-field="bar"]').style.width = percent + "%";
    box.querySelector('[role="progressbar"]').setAttribute("aria-valuenow", percent);
    set("done", done);
    set("total", p.total);
    set("imported", p.imported);
    set("duplicates", p.duplicates);
    set("failed", p.failed);
    set("seconds_left", p.seconds_left === null ? "—" : Math.round(p.seconds_left) + " s");
    box.querySelector('[data-field="stalled"]').hidden = !p.stalled;
  }
  function poll() {
    fetch(box.dataset.progressUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (p) {
        show(p);
        if (p.status !== "running") { window.location.reload(); return; }
        setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 8000); });
  }
  setTimeout(poll, 2000);
})();
