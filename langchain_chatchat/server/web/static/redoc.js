// ReDoc for /openapi.json, offline; the schema is fetched with the home page's API key (if any).
"use strict";

async function loadSpec() {
  const response = await fetch("/openapi.json", { headers: chatchatKey.headers() });
  if (response.status === 401) {
    chatchatKey.form(
      document.getElementById("key"),
      "This server needs an API key to show its API.",
      loadSpec,
    );
    return;
  }
  document.getElementById("key").replaceChildren();
  Redoc.init(await response.json(), { scrollYOffset: 35 }, document.getElementById("redoc"));
}

loadSpec();
