/* My sightings: poll photo statuses while any photo is processing; reload when one changes. */
(function () {
  "use strict";
  var root = document.getElementById("my-sightings");
  if (!root || root.dataset.pending !== "1" || !window.fetch) return;
  var url = root.dataset.statusUrl;
  var delay = 4000;

  function shown() {
    var out = {};
    root.querySelectorAll("[data-photo-id]").forEach(function (el) { out[el.dataset.photoId] = el.dataset.status; });
    return out;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        var current = shown();
        var changed = Object.keys(current).some(function (id) { return data.photos[id] && data.photos[id] !== current[id]; });
        if (changed) { window.location.reload(); return; }
        if (data.pending > 0) { delay = Math.min(delay * 1.2, 15000); setTimeout(poll, delay); }
      })
      .catch(function () { setTimeout(poll, 15000); });
  }
  setTimeout(poll, delay);
})();
