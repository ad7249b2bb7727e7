/* Maps that work with no internet (Leaflet, vendored under static/vendor/). Every element with data-map gets one:
 * - data-map="sightings": the public sightings (data-geojson-url), clustered with their counts; unconfirmed ones
 *   greyed; past MAP_POINT_LIMIT the server sends one feature per 0.1° cell (data-cell-size) with its count, drawn
 *   as a cluster whose popup links to the list narrowed to that cell;
 * - data-map="track": one whale's sightings in time order joined by a line (data-geojson-url);
 * - data-map="picker": the upload form's map: a click fills the latitude / longitude fields (data-lat, data-lon
 *   name the inputs), typing moves the marker, and the photo's EXIF GPS (the "exif-position" event that
 *   upload.js sends) shows as its own marker.
 * The base layer is the Natural Earth outline (data-world-url) unless data-tile-url names a tile server.
 * Text from the server (place names) is only ever set as textContent. */
(function () {
  "use strict";
  if (!window.L) return;
  var CONFIRMED = { radius: 7, color: "#0a4a70", weight: 2, fillColor: "#0b5d8c", fillOpacity: 0.85 };
  var UNCONFIRMED = { radius: 7, color: "#5b6b7a", weight: 2, dashArray: "3", fillColor: "#dbe3ea", fillOpacity: 0.9 };

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function baseMap(node) {
    var map = L.map(node, { worldCopyJump: true, minZoom: 0, maxZoom: node.dataset.tileUrl ? 18 : 10 });
    map.setView([20, 0], node.clientWidth < 500 ? 0 : 1);  // the whole world on a phone too
    if (node.dataset.tileUrl) {
      L.tileLayer(node.dataset.tileUrl, { attribution: node.dataset.tileAttribution }).addTo(map);
    } else {
      map.attributionControl.addAttribution("Natural Earth");
      fetch(node.dataset.worldUrl).then(function (r) { return r.json(); }).then(function (world) {
        L.geoJSON(world, {
          interactive: false,
          style: function (f) {
            return f.properties.kind === "borders"
              ? { color: "#9fb3c2", weight: 0.7, fill: false }
              : { color: "#7d95a8", weight: 0.8, fillColor: "#f3efe6", fillOpacity: 1 };
          }
        }).addTo(map).bringToBack();
        node.dataset.baseLayer = "offline";
      });
    }
    return map;
  }

  function say(node, text) {
    var status = document.getElementById(node.dataset.status || "");
    if (status) status.textContent = text;
  }

  function fitTo(map, layer, node) {
    var bounds = layer.getBounds();
    if (bounds.isValid()) map.fitBounds(bounds.pad(0.2), { maxZoom: 7 });
    node.dataset.ready = "true";
  }

  function sightingPopup(p, whaleUrl) {
    var box = el("div", "", "map-popup");
    box.appendChild(el("strong", p.d));
    if (!p.c) {
      box.appendChild(el("div", "Awaiting review: the position is approximate.", "muted"));
      return box;
    }
    if (p.p) box.appendChild(el("div", p.p));
    var whales = el("div");
    p.w.forEach(function (id, i) {
      var a = el("a", id, "mono");
      a.href = whaleUrl.replace("__id__", encodeURIComponent(id));
      if (i) whales.appendChild(document.createTextNode(", "));
      whales.appendChild(a);
    });
    box.appendChild(whales);
    return box;
  }

  /* A cell of the server's grid (many sightings: one feature per 0.1° cell with its count n) or a cluster of
   * markers shows how many sightings it holds: a cell counts n, a single sighting 1. */
  function countOf(marker) { return marker.options.count || 1; }

  function countIcon(n) {
    var size = n < 10 ? "small" : n < 100 ? "medium" : "large";  // markercluster's own looks
    var label = n < 10000 ? String(n) : Math.round(n / 1000) + "k";
    var html = "<div><span>" + label + "</span></div>";  // a number: nothing from the server is set as HTML
    return L.divIcon({ html: html, className: "marker-cluster marker-cluster-" + size, iconSize: L.point(40, 40) });
  }

  function clusterIcon(cluster) {
    var n = 0;
    cluster.getAllChildMarkers().forEach(function (m) { n += countOf(m); });
    return countIcon(n);
  }

  /* The sightings page's own address narrowed to one cell: its box at half a cell either side of the centre. */
  function cellListUrl(lat, lon, half) {
    var url = new URL(window.location.href);
    url.searchParams.delete("page");
    url.searchParams.set("lat_min", (lat - half).toFixed(3));
    url.searchParams.set("lat_max", (lat + half).toFixed(3));
    url.searchParams.set("lon_min", (lon - half).toFixed(3));
    url.searchParams.set("lon_max", (lon + half).toFixed(3));
    return url.pathname + url.search;
  }

  function cellPopup(p, lat, lon, half) {
    var box = el("div", "", "map-popup");
    box.appendChild(el("strong", p.n + " sighting" + (p.n === 1 ? "" : "s") + " around here"));
    var waiting = p.n - p.nc;
    box.appendChild(el("div", p.nc + " confirmed (" + p.nw + " whale" + (p.nw === 1 ? "" : "s") + ")" + (waiting ? ", " + waiting + " awaiting review" : "")));
    var a = el("a", "Show these sightings");
    a.href = cellListUrl(lat, lon, half);
    box.appendChild(a);
    return box;
  }

  function cellMarker(f, half) {
    var c = f.geometry.coordinates, p = f.properties;
    var marker = L.marker([c[1], c[0]], { icon: countIcon(p.n), count: p.n, title: p.n + " sightings around here", alt: p.n + " sightings" });
    marker.bindPopup(function () { return cellPopup(p, c[1], c[0], half); });
    return marker;
  }

  function pointMarker(f, whaleUrl) {
    var c = f.geometry.coordinates;
    var marker = L.circleMarker([c[1], c[0]], f.properties.c ? CONFIRMED : UNCONFIRMED);
    marker.bindPopup(function () { return sightingPopup(f.properties, whaleUrl); });
    return marker;
  }

  function sightingsMap(node) {
    var map = baseMap(node);
    var group = L.markerClusterGroup
      ? L.markerClusterGroup({ showCoverageOnHover: false, maxClusterRadius: 50, iconCreateFunction: clusterIcon })
      : L.featureGroup();
    var half = parseFloat(node.dataset.cellSize || "0.1") / 2;
    fetch(node.dataset.geojsonUrl, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
      var features = data.features || [];
      var markers = features.map(function (f) { return data.cells ? cellMarker(f, half) : pointMarker(f, node.dataset.whaleUrl); });
      if (group.addLayers) group.addLayers(markers); else markers.forEach(function (m) { group.addLayer(m); });
      group.addTo(map);
      var total = data.cells ? data.total : features.length;
      node.dataset.points = String(total);
      node.dataset.cells = data.cells ? String(features.length) : "";
      var text = total + " sighting" + (total === 1 ? "" : "s") + " on the map";
      if (!total) text = "No sightings with a position match these filters.";
      else if (data.cells) text += ", counted by area of about 11 km: zoom in, pick one, or narrow the filters to see each sighting.";
      else text += ".";
      say(node, text);
      fitTo(map, group, node);
    }).catch(function () { say(node, "The map could not load its sightings; the list below is complete."); });
  }

  function trackPopup(p) {
    var box = el("div", "", "map-popup");
    box.appendChild(el("strong", "#" + p.n + " · " + p.date));
    if (p.place) box.appendChild(el("div", p.place));
    if (p.photo) {
      var img = el("img");
      img.src = p.photo;
      img.alt = "Fluke photo of " + p.date;
      img.className = "map-popup-photo";
      box.appendChild(img);
    }
    return box;
  }

  function trackMap(node) {
    var map = baseMap(node);
    fetch(node.dataset.geojsonUrl, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
      var layer = L.geoJSON(data, {
        style: function (f) {  // applied to every layer: the points keep their own look
          return f.geometry.type === "LineString" ? { color: "#f28c28", weight: 3, opacity: 0.9, className: "track-line", interactive: false } : CONFIRMED;
        },
        pointToLayer: function (f, latlng) { return L.circleMarker(latlng, CONFIRMED); },
        onEachFeature: function (f, l) { if (f.geometry.type === "Point") l.bindPopup(function () { return trackPopup(f.properties); }); }
      }).addTo(map);
      var points = data.features.filter(function (f) { return f.geometry.type === "Point"; }).length;
      var line = data.features.filter(function (f) { return f.geometry.type === "LineString"; })[0];
      node.dataset.points = String(points);
      node.dataset.trackPoints = String(line ? line.geometry.coordinates.length : 0);
      say(node, points ? "" : "None of its sightings has a position yet.");
      fitTo(map, layer, node);
    }).catch(function () { say(node, "The map could not load this whale's track."); });
  }

  function offMap(lat, lon) {
    if (isNaN(lat) || isNaN(lon)) return "";
    if (lat < -90 || lat > 90) return "Latitude " + lat + " is off the map: it must be between -90 (south) and 90 (north).";
    if (lon < -180 || lon > 180) return "Longitude " + lon + " is off the map: it must be between -180 (west) and 180 (east).";
    return "";
  }

  function pickerMap(node) {
    var map = baseMap(node);
    var form = node.closest("form");
    var lat = form.elements[node.dataset.lat], lon = form.elements[node.dataset.lon];
    var marker = null, exif = null;
    function place(latlng, pan) {
      if (!marker) marker = L.circleMarker(latlng, { radius: 8, color: "#b35f0f", weight: 3, fillColor: "#f28c28", fillOpacity: 0.9 }).addTo(map);
      marker.setLatLng(latlng);
      if (pan) map.setView(latlng, Math.max(map.getZoom(), 5));
    }
    map.on("click", function (e) {
      var p = e.latlng.wrap();
      lat.value = p.lat.toFixed(5);
      lon.value = p.lng.toFixed(5);
      place(p, false);
      say(node, "Position set to " + lat.value + ", " + lon.value + ". Click again to move it.");
    });
    function typed() {
      var a = parseFloat(lat.value), b = parseFloat(lon.value);
      var problem = offMap(a, b);
      if (problem || node.dataset.offMap) say(node, problem);  // clear only our own off-map message
      node.dataset.offMap = problem ? "1" : "";
      if (!problem && !isNaN(a) && !isNaN(b)) place([a, b], true);
    }
    lat.addEventListener("change", typed);
    lon.addEventListener("change", typed);
    form.addEventListener("exif-position", function (e) {
      var p = [e.detail.latitude, e.detail.longitude];
      if (!exif) exif = L.circleMarker(p, { radius: 10, color: "#1d8a5a", weight: 3, fill: false }).addTo(map).bindTooltip("From the photo's GPS");
      exif.setLatLng(p);
      map.setView(p, Math.max(map.getZoom(), 5));
      node.dataset.exif = "shown";
      say(node, "The green ring is where the photo's GPS says it was taken.");
    });
    typed();
    node.dataset.ready = "true";
  }

  var modes = { sightings: sightingsMap, track: trackMap, picker: pickerMap };
  document.querySelectorAll("[data-map]").forEach(function (node) {
    var make = modes[node.dataset.map];
    if (make) make(node);
  });
})();
