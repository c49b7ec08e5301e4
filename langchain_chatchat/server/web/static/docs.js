// Swagger UI for /openapi.json, offline, sending the home page's API key (if any) with the
// schema request and with every "Try it out" call.
"use strict";

chatchatKey.loadSchema((spec) => {
  window.ui = SwaggerUIBundle({
    spec,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // the default sends the schema to an online validator
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    requestInterceptor: (request) => {
      const key = chatchatKey.get();
      if (key && !request.headers.Authorization) request.headers.Authorization = `Bearer ${key}`;
      return request;
    },
  });
});
