/* Upload form: drag & drop, previews, per-file remove, size/type hints, EXIF prefill, a species select per
   photo (prefilled with the species classifier's suggestion when the site has one), required fields
   checked before the photos leave the page. */
(function () {
  "use strict";
  var form = document.getElementById("submit-form");
  if (!form) return;
  document.documentElement.classList.add("js");
  var input = form.querySelector('input[type="file"][name="photos"]');
  var zone = document.getElementById("dropzone");
  var list = document.getElementById("previews");
  var count = document.getElementById("file-count");
  var exifStatus = document.getElementById("exif-status");
  var maxFiles = parseInt(form.dataset.maxFiles || "20", 10);
  var maxBytes = parseInt(form.dataset.maxBytes || "26214400", 10);
  var okTypes = /^image\/(jpeg|png|webp|tiff|gif|heic|heif)$/;
  var okExt = /\.(jpe?g|jpe|png|webp|tiff?|gif|mpo)$/i;
  var files = [];
  var speciesTemplate = document.getElementById("photo-species-template");
  var speciesUrl = form.dataset.speciesUrl;
  var canSync = typeof DataTransfer !== "undefined";

  function mb(n) { return (n / 1048576).toFixed(1) + " MB"; }

  function hintFor(file) {
    if (file.size > maxBytes) return "Too large (" + mb(file.size) + "); max " + mb(maxBytes) + ".";
    if (!(okTypes.test(file.type) || okExt.test(file.name))) return "This doesn't look like a photo.";
    return "";
  }

  function sync() {
    if (canSync) {
      var dt = new DataTransfer();
      files.forEach(function (f) { dt.items.add(f.file); });
      input.files = dt.files;
    }
    var n = files.length;
    count.textContent = n ? n + " photo" + (n === 1 ? "" : "s") + " selected" + (n >= maxFiles ? " (maximum reached)" : "") : "";
  }

  function render() {
    list.innerHTML = "";
    files.forEach(function (item, i) {
      var li = document.createElement("li");
      li.className = "preview" + (item.hint ? " is-bad" : "");
      var img = document.createElement("img");
      img.alt = "Preview of " + item.file.name;
      img.src = item.url;
      img.onerror = function () { img.replaceWith(Object.assign(document.createElement("div"), { className: "noimg", textContent: "No preview" })); };
      var meta = document.createElement("div");
      meta.className = "meta";
      meta.innerHTML = '<div class="name"></div><div class="muted"></div>' + (item.hint ? '<div class="hint"></div>' : "");
      meta.querySelector(".name").textContent = item.file.name;
      meta.querySelector(".name").title = item.file.name;
      meta.querySelector(".muted").textContent = mb(item.file.size);
      if (item.hint) meta.querySelector(".hint").textContent = item.hint;
      var rm = document.createElement("button");
      rm.type = "button";
      rm.className = "remove";
      rm.setAttribute("aria-label", "Remove " + item.file.name);
      rm.textContent = "×";
      rm.addEventListener("click", function () { remove(i); });
      if (speciesTemplate && canSync) meta.appendChild(speciesSelect(item));
      li.append(img, meta, rm);
      list.appendChild(li);
    });
    sync();
  }

  function pct(p) { return Math.round(p * 100) + "%"; }

  function suggestionText(d) {
    if (!d) return "Suggested: checking…";
    if (d.later) return "Suggested when you submit";  // the server classifies every photo it keeps
    if (d.available === false) return "No suggestion: same as the sighting";  // services.photo_species
    if (d.error) return "No suggestion: " + d.error;
    if (d.species) return "Suggested: " + d.label + " (" + pct(d.probability) + ")";
    return "Suggested: unknown species" + (d.best ? " (best guess " + d.best.label + ", " + pct(d.probability) + ")" : "");
  }

  // One select per photo, named photo_species in the files' order; its state lives on the item (render
  // rebuilds the list after a removal).
  function speciesSelect(item) {
    var label = speciesTemplate.content.firstElementChild.cloneNode(true);
    var select = label.querySelector("select");
    select.setAttribute("aria-label", "Species of " + item.file.name);
    var suggested = select.querySelector('option[value="suggested"]');
    if (suggested) suggested.textContent = suggestionText(item.suggestion);
    select.value = item.choice;
    if (item.suggestion) select.dataset.suggested = item.suggestion.species || "";
    select.addEventListener("change", function () { item.choice = select.value; });
    item.select = select;
    return label;
  }

  function suggest(item) {
    if (!speciesUrl || !window.fetch || item.hint) return;
    var body = new FormData();
    body.append("photo", item.file);
    fetch(speciesUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": form.elements.csrfmiddlewaretoken.value }
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (d) {
        return r.ok ? d : { error: d.error || "", later: r.status !== 400 };
      });
    }).then(function (d) { show(item, d); }).catch(function () { show(item, { later: true }); });
  }

  function show(item, d) {
    item.suggestion = d;
    if (!item.select) return;
    var opt = item.select.querySelector('option[value="suggested"]');
    if (opt) opt.textContent = suggestionText(d);
    item.select.dataset.suggested = d.species || "";
  }

  function remove(i) {
    URL.revokeObjectURL(files[i].url);
    files.splice(i, 1);
    render();
  }

  function add(fileList) {
    var wasEmpty = files.length === 0;
    var skipped = 0;
    Array.prototype.forEach.call(fileList, function (file) {
      if (files.length >= maxFiles) { skipped++; return; }
      var dupe = files.some(function (f) { return f.file.name === file.name && f.file.size === file.size; });
      if (dupe) return;
      var item = { file: file, url: URL.createObjectURL(file), hint: hintFor(file), choice: speciesUrl ? "suggested" : "" };
      files.push(item);
      suggest(item);
    });
    render();
    if (skipped) count.textContent += " — " + skipped + " not added: at most " + maxFiles + " photos per sighting.";
    var first = files.find(function (f) { return !f.hint; });
    if (wasEmpty && first) prefill(first.file);
  }

  function setIfEmpty(name, value) {
    var el = form.elements[name];
    if (el && !el.value && value !== null && value !== undefined && value !== "") {
      el.value = value;
      el.classList.add("prefilled");
      return true;
    }
    return false;
  }

  function prefill(file) {
    var url = form.dataset.exifUrl;
    if (!url || !window.fetch) return;
    var body = new FormData();
    body.append("photo", file);
    exifStatus.textContent = "Reading date and position from the photo…";
    fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": form.elements.csrfmiddlewaretoken.value }
    }).then(function (r) { return r.ok ? r.json() : {}; }).then(function (d) {
      var filled = [];
      if (setIfEmpty("observed_date", d.date)) filled.push("date");
      if (setIfEmpty("observed_time", d.time)) filled.push("time");
      if (setIfEmpty("latitude", d.latitude)) filled.push("latitude");
      if (setIfEmpty("longitude", d.longitude)) filled.push("longitude");
      if (d.latitude !== null && d.latitude !== undefined && d.longitude !== null && d.longitude !== undefined) {
        // the upload map (maps.js) marks the photo's own GPS position, and moves its pin when the fields were filled
        if (filled.indexOf("latitude") !== -1) form.elements.latitude.dispatchEvent(new Event("change"));
        form.dispatchEvent(new CustomEvent("exif-position", { detail: { latitude: d.latitude, longitude: d.longitude } }));
      }
      exifStatus.textContent = filled.length ? "Filled in " + filled.join(", ") + " from the photo's EXIF data — please check." : "";
    }).catch(function () { exifStatus.textContent = ""; });
  }

  if (canSync) {
    input.addEventListener("change", function () {
      var picked = Array.prototype.slice.call(input.files);
      add(picked);
    });
  } else {
    input.addEventListener("change", function () {
      count.textContent = input.files.length + " photo(s) selected";
    });
  }

  ["dragenter", "dragover"].forEach(function (ev) {
    zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.add("is-over"); });
  });
  ["dragleave", "drop"].forEach(function (ev) {
    zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.remove("is-over"); });
  });
  zone.addEventListener("drop", function (e) {
    if (e.dataTransfer && e.dataTransfer.files.length) add(e.dataTransfer.files);
  });
  // Stop a photo dropped next to the zone from navigating away from the form.
  window.addEventListener("dragover", function (e) { e.preventDefault(); });
  window.addEventListener("drop", function (e) { if (!zone.contains(e.target)) e.preventDefault(); });

  // Required fields are checked here first: after a round trip with an error the browser cannot
  // re-select the chosen photos, so a missing species or date must never cost them.
  var REQUIRED = { species: "Choose a species.", observed_date: "Give the date of the sighting." };

  function missingRequired() {
    var first = null;
    Object.keys(REQUIRED).forEach(function (name) {
      var el = form.elements[name];
      if (!el) return;
      var field = el.closest(".field");
      var note = field.querySelector("[data-client-error]");
      if (el.value) { if (note) note.remove(); field.classList.remove("has-error"); return; }
      if (!note) {
        note = Object.assign(document.createElement("div"), { className: "error", textContent: REQUIRED[name] });
        note.setAttribute("role", "alert");
        note.dataset.clientError = "";
        field.appendChild(note);
      }
      field.classList.add("has-error");
      first = first || el;
    });
    if (first) first.focus();
    return Boolean(first);
  }

  form.addEventListener("submit", function (e) {
    if (missingRequired()) { e.preventDefault(); return; }
    var btn = document.getElementById("submit-btn");
    if (btn) { btn.disabled = true; btn.textContent = "Uploading…"; }
  });
  form.dataset.ready = "true";  // the handlers above are bound (the script is deferred)
})();
