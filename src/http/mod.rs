//! Routes and handlers: each parses the request, calls a service, and maps the result.

pub mod conn;
pub mod docs;
pub mod health;
mod openapi_errors;
pub mod panic;
pub mod photo;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;

const HEALTHZ: &str = "/healthz";
const READYZ: &str = "/readyz";
const OPENAPI: &str = "/openapi.json";
const DOCS: &str = "/docs";
const DOCS_UI: &str = "/docs/{_:.*}";
const PHOTOS: &str = "/v1.0/{tail:.*}";

/// Every route pattern registered: the only values a route label may take besides the photo
/// templates and `unmatched`.
pub const ROUTE_PATTERNS: &[&str] = &[HEALTHZ, READYZ, OPENAPI, DOCS, DOCS_UI, PHOTOS];

/// Registers every route of the public API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(HEALTHZ, web::get().to(health::healthz))
        .route(READYZ, web::get().to(health::readyz))
        .route(OPENAPI, web::get().to(docs::openapi_json))
        .route(DOCS, web::get().to(docs::docs_redirect))
        .service(docs::swagger_ui(DOCS_UI))
        .service(
            web::resource(PHOTOS)
                .route(web::put().to(photo::update_photo))
                .route(web::patch().to(photo::update_photo))
                .default_service(web::to(method_not_allowed)),
        )
        .default_service(web::to(not_found));
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no such route: {} {}; photo updates are PUT or PATCH on Graph's …/photo/$value paths under /v1.0 (see /docs)",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(format!(
        "{} is not supported here: use PUT or PATCH",
        req.method()
    )))
}
