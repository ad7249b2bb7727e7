/* Model dashboard: poll the running training run's progress every 1.5 s (each phase with its own
   label and counter; the last validation MAP@5 stays on screen). */
(function () {
  "use strict";
  var box = document.getElementById("run-progress");
  if (!box || !box.dataset.progressUrl || !window.fetch) return;
  var url = box.dataset.progressUrl;
  var bar = box.querySelector(".progress-bar");
  var meter = box.querySelector(".progress");

  function fmt(v, digits) { return v === null || v === undefined ? "—" : Number(v).toFixed(digits); }
  function eta(s) {
    if (s === null || s === undefined) return "—";
    s = Math.max(0, Math.round(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + sec + "s";
  }
  function set(name, text) {
    var el = box.querySelector('[data-field="' + name + '"]');
    if (el && el.textContent !== String(text)) el.textContent = text;
  }

  function update(p) {
    set("status_display", p.status_display);
    set("phase_label", p.phase_label || ""); set("message", p.message || "");
    set("counter_label", p.counter_label); set("epoch", p.epoch); set("epochs", p.epochs);
    set("step", p.step); set("steps_per_epoch", p.steps_per_epoch);
    set("loss", fmt(p.loss, 4)); set("val_map5", fmt(p.val_map5, 3));  // the last validation stays
    set("val_epoch_note", p.val_epoch === null || p.val_epoch === undefined ? "" : "(epoch " + p.val_epoch + ")");
    set("eta", p.done ? "—" : eta(p.eta_seconds));
    var log = box.querySelector('[data-field="log_tail"]');
    if (log && log.textContent !== p.log_tail) { log.textContent = p.log_tail; log.scrollTop = log.scrollHeight; }
    if (bar) bar.style.width = p.percent + "%";
    if (meter) meter.setAttribute("aria-valuenow", p.percent);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (p) {
        update(p);
        if (p.done) { setTimeout(function () { window.location.reload(); }, 1500); return; }
        setTimeout(poll, 1500);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  var initialLog = box.querySelector('[data-field="log_tail"]');
  if (initialLog) initialLog.scrollTop = initialLog.scrollHeight;
  poll();
})();
