//! Routes and handlers: each parses the request, calls a service, and maps the result.

pub mod conn;
pub mod docs;
pub mod health;
mod openapi_errors;
pub mod panic;
pub mod photo;
pub mod read;

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
        .route(DOCS_UI, web::get().to(docs::swagger_file))
        .service(
            web::resource(PHOTOS)
                .route(web::put().to(photo::update_photo))
                .route(web::patch().to(photo::update_photo))
                .route(web::get().to(read::read_photo))
                .route(web::delete().to(read::delete_photo))
                .default_service(web::to(method_not_allowed)),
        )
        .default_service(web::to(not_found));
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no such route: {} {}; photos are read, set and deleted on Graph's …/photo/$value paths under /v1.0 (see /docs)",
        req.method(),
        req.path()
    )))
}

/// A method the path does not answer; `Allow` names the ones it does (an unknown path: 404).
async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (target, view) = crate::graph::PhotoTarget::parse_view(req.path())
        .map_err(|e| crate::error::target_error(e, req.path()))?;
    let allow = view.allow(target.kind());
    Err(ApiError::MethodNotAllowed(
        format!("{} is not supported here: use {allow}", req.method()),
        allow,
    ))
}
