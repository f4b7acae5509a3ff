//! A panic in a handler is a bug; the caller still gets a problem body (500 `internal-error`
//! with the request id) instead of a dropped connection, and the log says where it happened.

use std::panic::AssertUnwindSafe;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};
use futures_util::FutureExt;

use crate::error::ApiError;
use crate::telemetry::{current_request_id, stamp_headers};

/// Middleware (inside the request context, so the answer carries the request id): turns a
/// handler panic into 500 `internal-error`.
pub async fn catch_panic(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // No clone of the request may be held here: routing needs it unshared. The answer is
    // therefore handed on as an error that carries its finished response.
    let path = req.path().to_owned();
    // Nothing the handler shared is used after a panic: the request is answered and dropped.
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, path = %path, "a handler panicked");
            let mut response = ApiError::Internal.error_response();
            stamp_headers(response.headers_mut(), &current_request_id());
            Err(InternalError::from_response("a handler panicked", response).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::middleware::from_fn;
    use actix_web::{App, HttpResponse, test, web};

    use super::catch_panic;
    use crate::telemetry::request_context;

    #[actix_web::test]
    async fn a_panicking_handler_answers_500_internal_error_as_a_problem() {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(catch_panic))
                .wrap(from_fn(request_context))
                .route(
                    "/boom",
                    web::get().to(|| async {
                        if std::hint::black_box(true) {
                            panic!("deliberate");
                        }
                        HttpResponse::Ok().finish()
                    }),
                )
                .route(
                    "/ok",
                    web::get().to(|| async { HttpResponse::Ok().finish() }),
                ),
        )
        .await;
        let resp = test::try_call_service(
            &app,
            test::TestRequest::get()
                .uri("/boom")
                .insert_header(("X-Request-Id", "panic-1"))
                .to_request(),
        )
        .await
        .map(|r| r.map_into_boxed_body().into_parts().1)
        .unwrap_or_else(|e| e.error_response());
        assert_eq!(resp.status(), 500);
        assert_eq!(resp.headers().get("x-request-id").unwrap(), "panic-1");
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "application/problem+json"
        );
        let bytes = actix_web::body::to_bytes(resp.into_body()).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["code"], "internal-error");
        assert_eq!(body["status"], 500);
        assert_eq!(body["requestId"], "panic-1");
        assert!(!body["detail"].as_str().unwrap().contains("deliberate"));

        let resp = test::call_service(&app, test::TestRequest::get().uri("/ok").to_request()).await;
        assert_eq!(resp.status(), 200, "other requests are served as before");
    }
}
