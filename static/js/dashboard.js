/* Model dashboard: the retrain form's time estimate, recomputed as its fields change (the step times
   a training worker measured, x epochs x batches per epoch; training.estimate does the same on the
   server), then the running run's progress, polled every 1.5 s (each phase with its own label and
   counter; the last validation MAP@5 stays on screen). */
(function () {
  "use strict";
  var box = document.getElementById("train-estimate");
  var form = box && box.closest("form");
  if (!form) return;
  var timings = JSON.parse(box.dataset.timings || "[]");
  var batches = Number(box.dataset.batches) || 1, maxSteps = Number(box.dataset.maxSteps) || 0;
  var batchesBySpecies = JSON.parse(box.dataset.batchesBySpecies || "{}");  // each species trains on its own photos
  var warnAfter = Number(box.dataset.warnAfter) || 3600;
  function part(name) { return box.querySelector('[data-estimate="' + name + '"]'); }
  function duration(s) {
    s = Math.max(0, Math.ceil(s));
    if (s >= 3600) { var m = Math.floor((s % 3600) / 60); return Math.floor(s / 3600) + " h " + (m < 10 ? "0" : "") + m + " min"; }
    return s >= 60 ? Math.floor(s / 60) + " min" : s + " s";
  }
  function update() {
    if (form.elements.species && batchesBySpecies[form.elements.species.value]) {
      batches = Number(batchesBySpecies[form.elements.species.value]) || 1;
    }
    var arch = form.elements.arch.value, size = Number(form.elements.image_size.value);
    var epochs = Math.max(0, parseInt(form.elements.epochs.value, 10) || 0);
    var t = timings.filter(function (x) { return x.arch === arch && x.image_size === size; })[0];
    if (!t) {
      part("text").textContent = "not measured yet";
      part("source").textContent = "No step time for this architecture and size on the training worker yet: measure it, then the estimate appears here.";
      part("warning").hidden = true;
      return;
    }
    var steps = epochs * batches;
    if (maxSteps) steps = Math.min(steps, maxSteps);
    var seconds = steps * t.seconds_per_step;
    part("text").textContent = "about " + duration(seconds);
    part("source").textContent = steps + " steps (" + batches + " batch" + (batches === 1 ? "" : "es") + " per epoch) \u00d7 " +
      t.seconds_per_step.toFixed(2) + " s per step, measured on " + t.worker + " (" + t.device + ") at " + t.measured_at +
      ", " + t.reason + ". Validation adds a little per epoch.";
    part("warning").hidden = !(t.device.indexOf("cpu") === 0 && seconds > warnAfter);
  }
  ["species", "arch", "image_size", "epochs"].forEach(function (name) {
    if (!form.elements[name]) return;
    form.elements[name].addEventListener("input", update);
    form.elements[name].addEventListener("change", update);
  });
})();

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
