// TopoJSON (world-atlas) to one GeoJSON FeatureCollection: the land and the borders between countries,
// coordinates rounded to 0.001 degrees (about 100 m, finer than the 50m data). Run by vendor.sh.
const fs = require("fs"); const tc = require("topojson-client");
const round = (x) => Math.round(x * 1000) / 1000;
function r(c){ return typeof c[0] === "number" ? [round(c[0]), round(c[1])] : c.map(r); }
function fix(g){ if (g.geometry) g.geometry.coordinates = r(g.geometry.coordinates); else if (g.coordinates) g.coordinates = r(g.coordinates); if (g.features) g.features.forEach(fix); return g; }
const land = JSON.parse(fs.readFileSync(process.argv[2]));
const countries = JSON.parse(fs.readFileSync(process.argv[3]));
const out = {type:"FeatureCollection", features:[
  {type:"Feature", properties:{kind:"land"}, geometry: fix(tc.feature(land, land.objects.land)).geometry || fix(tc.merge(land, land.objects.land.geometries))},
  {type:"Feature", properties:{kind:"borders"}, geometry: fix(tc.mesh(countries, countries.objects.countries, (a,b)=>a!==b))},
]};
fs.writeFileSync(process.argv[4], JSON.stringify(out));
