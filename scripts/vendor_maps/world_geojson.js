// TopoJSON (world-atlas) to one GeoJSON FeatureCollection: the land and the borders between countries,
// coordinates rounded to 0.001 degrees (about 100 m, finer than the 50m data). Run by vendor.sh.
// world-atlas is spherical: a ring that crosses the antimeridian (Chukotka, Fiji) would be drawn by Leaflet, which
// is planar, as a band around the whole world. Such a ring is unwrapped (longitudes made continuous, past 180)
// and drawn twice, once shifted by 360 degrees; a border line is split where it jumps across.
const fs = require("fs");
const tc = require("topojson-client");
const round = (x) => Math.round(x * 1000) / 1000;

function unwrap(ring) {
  const out = [[round(ring[0][0]), round(ring[0][1])]];
  for (let i = 1; i < ring.length; i++) {
    let lon = ring[i][0];
    const prev = out[i - 1][0];
    while (lon - prev > 180) lon -= 360;
    while (prev - lon > 180) lon += 360;
    out.push([round(lon), round(ring[i][1])]);
  }
  return out;
}

const shift = (rings, by) => rings.map((r) => r.map(([x, y]) => [round(x + by), y]));

function polygons(geometry) {
  const polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  const out = [];
  for (const poly of polys) {
    const rings = poly.map(unwrap);
    const xs = rings[0].map((p) => p[0]);
    out.push(rings);
    if (Math.max(...xs) > 180) out.push(shift(rings, -360));
    if (Math.min(...xs) < -180) out.push(shift(rings, 360));
  }
  return { type: "MultiPolygon", coordinates: out };
}

function lines(geometry) {
  const parts = geometry.type === "LineString" ? [geometry.coordinates] : geometry.coordinates;
  const out = [];
  for (const line of parts) {
    let piece = [];
    line.forEach((p, i) => {
      if (i && Math.abs(p[0] - line[i - 1][0]) > 180) {
        out.push(piece);
        piece = [];
      }
      piece.push([round(p[0]), round(p[1])]);
    });
    out.push(piece);
  }
  return { type: "MultiLineString", coordinates: out.filter((l) => l.length > 1) };
}

const [landFile, countriesFile, outFile] = process.argv.slice(2);
const land = JSON.parse(fs.readFileSync(landFile));
const countries = JSON.parse(fs.readFileSync(countriesFile));
const landGeometry = tc.feature(land, land.objects.land).features
  ? tc.merge(land, land.objects.land.geometries)
  : tc.feature(land, land.objects.land).geometry;
const borders = tc.mesh(countries, countries.objects.countries, (a, b) => a !== b);
fs.writeFileSync(
  outFile,
  JSON.stringify({
    type: "FeatureCollection",
    features: [
      { type: "Feature", properties: { kind: "land" }, geometry: polygons(landGeometry) },
      { type: "Feature", properties: { kind: "borders" }, geometry: lines(borders) },
    ],
  })
);
