// Starts Swagger UI on the gateway's /docs page; a file rather than inline so `script-src 'self'`
// holds.
(function () {
  "use strict";

  var container = document.getElementById("swagger-ui");

  // Without the vendored assets the page would stay blank; say what to do instead.
  if (!window.SwaggerUIBundle) {
    var message = document.createElement("p");
    message.className = "swagger-ui-boot-error";
    message.textContent =
      "Swagger UI's assets are missing from this server. Build the gateway with `make`, " +
      "which runs scripts/vendor_assets.py to fetch them from the npm registry.";
    container.replaceChildren(message);
    return;
  }

  // FastAPI's defaults for its own /docs page, minus what needs the standalone preset's file.
  window.SwaggerUIBundle({
    domNode: container,
    url: container.dataset.openapiUrl,
    layout: "BaseLayout",
    presets: [window.SwaggerUIBundle.presets.apis],
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // Never hand the document's URL to validator.swagger.io, which would leave the site.
    validatorUrl: "none",
  });
})();
