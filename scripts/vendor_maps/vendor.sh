#!/usr/bin/env bash
# Vendor the offline map stack into static/vendor/ from the npm registry (run once per upgrade; the
# output is committed, so the site and its tests never need npm or the internet):
#   leaflet 1.9.4 (BSD-2-Clause), leaflet.markercluster 1.5.3 (MIT), world-atlas 2.0.2 (ISC, Natural Earth
#   50m land and country borders, public domain), converted from TopoJSON to GeoJSON with topojson-client
#   3.1.0 (ISC, build time only). Source-map comments are dropped: whitenoise's manifest storage would
#   otherwise demand the .map files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm init -y >/dev/null && npm install --no-audit --no-fund \
  leaflet@1.9.4 leaflet.markercluster@1.5.3 world-atlas@2.0.2 topojson-client@3.1.0 >/dev/null)
nm="$tmp/node_modules"
out="$repo/static/vendor"
rm -rf "$out/leaflet" "$out/leaflet.markercluster" "$out/world-atlas"
mkdir -p "$out/leaflet/images" "$out/leaflet.markercluster" "$out/world-atlas"
strip_map() { sed '/sourceMappingURL=/d' "$1" >"$2"; }
strip_map "$nm/leaflet/dist/leaflet.js" "$out/leaflet/leaflet.js"
cp "$nm/leaflet/dist/leaflet.css" "$out/leaflet/"
cp "$nm"/leaflet/dist/images/*.png "$out/leaflet/images/"
cp "$nm/leaflet/LICENSE" "$out/leaflet/LICENSE"
strip_map "$nm/leaflet.markercluster/dist/leaflet.markercluster.js" "$out/leaflet.markercluster/leaflet.markercluster.js"
cp "$nm"/leaflet.markercluster/dist/MarkerCluster*.css "$out/leaflet.markercluster/"
cp "$nm/leaflet.markercluster/MIT-LICENCE.txt" "$out/leaflet.markercluster/LICENSE"
cp "$nm/world-atlas/LICENSE" "$out/world-atlas/LICENSE"
NODE_PATH="$nm" node "$here/world_geojson.js" "$nm/world-atlas/land-50m.json" \
  "$nm/world-atlas/countries-50m.json" "$out/world-atlas/world-50m.geojson"
chmod 644 "$out"/*/*.* "$out"/*/LICENSE
echo "vendored into $out"
