//! The OpenAPI document and interactive documentation (Swagger UI, vendored: works offline).

use actix_web::{HttpResponse, http::header, web};

use crate::error::ApiError;

/// The OpenAPI document as served, rendered once at start by `server` (from `openapi`).
pub struct ApiDocument(pub String);

/// The routes of the documentation.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/openapi.json").get(openapi_json))
        .service(web::resource("/docs").get(docs_page))
        .service(web::resource("/docs/{file}").get(docs_asset));
}

/// The OpenAPI 3.1 document of this API.
pub async fn openapi_json(document: web::Data<ApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}

const DOCS_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Resonance API</title>
  <link rel="icon" href="/docs/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="docs"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.onload = () => {
      window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#docs", deepLinking: true,
        persistAuthorization: true });
    };
  </script>
</body>
</html>
"##;

/// Interactive documentation.
pub async fn docs_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(DOCS_HTML)
}

/// The vendored Swagger UI assets.
pub async fn docs_asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (body, content_type): (&'static [u8], &str) = match file.as_str() {
        "swagger-ui-bundle.js" => (
            include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js"),
            "text/javascript; charset=utf-8",
        ),
        "swagger-ui.css" => (
            include_bytes!("../../assets/swagger-ui/swagger-ui.css"),
            "text/css; charset=utf-8",
        ),
        "favicon-32x32.png" => (
            include_bytes!("../../assets/swagger-ui/favicon-32x32.png"),
            "image/png",
        ),
        _ => return Err(ApiError::NotFound("file")),
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(body))
}
