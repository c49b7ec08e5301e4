// ReDoc for /openapi.json, offline; the schema is fetched with the home page's API key (if any).
"use strict";

chatchatKey.loadSchema((spec) =>
  Redoc.init(spec, { scrollYOffset: 35 }, document.getElementById("redoc")),
);
