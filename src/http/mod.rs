//! Routes and handlers: each parses the request, calls a service, and maps the result.

pub mod conn;
pub mod docs;
pub mod health;
mod openapi_errors;
pub mod panic;
pub mod photo;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;

/// Registers every route of the public API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/openapi.json", web::get().to(docs::openapi_json))
        .route("/docs", web::get().to(docs::docs_redirect))
        .service(docs::swagger_ui())
        .service(
            web::resource("/v1.0/{tail:.*}")
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
