//! Which Entra endpoint a request is for, and the answer: discovery, JWKS, token, or a fault.

use std::collections::HashMap;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::EntraState;
use super::token_endpoint::{EntraError, basic_auth, no_store, parse_form};
use crate::faults::StatusFault;
use crate::server::Service;
use crate::util::{Body, collect_limited, guid, json, lock};

/// The client's `client-request-id` when usable, else a fresh GUID (Entra's correlation id).
fn correlation_id(parts: &Parts) -> String {
    parts
        .headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(guid)
}

/// An Entra endpoint, with the tenant (id or domain) the path names.
enum Route<'a> {
    DiscoveryV2(&'a str),
    DiscoveryV1(&'a str),
    Jwks(&'a str),
    Token(&'a str),
    NotFound,
}

fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let Some((tenant, rest)) = segs.split_first() else {
        return Route::NotFound;
    };
    match (method, rest) {
        (&Method::GET, ["v2.0", ".well-known", "openid-configuration"]) => {
            Route::DiscoveryV2(tenant)
        }
        (&Method::GET, [".well-known", "openid-configuration"]) => Route::DiscoveryV1(tenant),
        (&Method::GET, ["discovery", "v2.0", "keys"] | ["discovery", "keys"]) => {
            Route::Jwks(tenant)
        }
        (&Method::POST, ["oauth2", "v2.0", "token"]) => Route::Token(tenant),
        _ => Route::NotFound,
    }
}

impl Service for EntraState {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let correlation = correlation_id(&parts);
        let tenant_error = |tenant: &str, error: &'static str| {
            EntraError::new(
                error,
                90002,
                format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            )
        };
        let mut resp = match route(&parts.method, parts.uri.path()) {
            Route::DiscoveryV2(t) | Route::DiscoveryV1(t) | Route::Jwks(t)
                if !self.tenant_ok(t) =>
            {
                self.error_response(tenant_error(t, "invalid_tenant"), &correlation)
            }
            Route::DiscoveryV2(t) => {
                lock(&self.counters).discovery += 1;
                json(StatusCode::OK, &self.discovery_v2(t))
            }
            Route::DiscoveryV1(t) => {
                lock(&self.counters).discovery += 1;
                json(StatusCode::OK, &self.discovery_v1(t))
            }
            Route::Jwks(_) => {
                lock(&self.counters).jwks += 1;
                self.jwks_response()
            }
            Route::Token(tenant) => {
                let tenant = tenant.to_string();
                let form = match collect_limited(body, 1024 * 1024).await {
                    Some(b) => parse_form(&b),
                    None => HashMap::new(),
                };
                let user = self.request_user(&form);
                let result = if self.tenant_ok(&tenant) {
                    self.token(&form, basic_auth(&parts))
                } else {
                    Err(tenant_error(&tenant, "invalid_request"))
                };
                let resp = match result {
                    Ok(v) => {
                        let mut r = json(StatusCode::OK, &v);
                        no_store(&mut r);
                        r
                    }
                    Err(e) => self.error_response(e, &correlation),
                };
                self.count_token(&form, user, resp.status().as_u16());
                resp
            }
            Route::NotFound => json(
                StatusCode::NOT_FOUND,
                &json!({"error": "not_found", "error_description": format!("No Entra emulator endpoint at {} {}.", parts.method, parts.uri.path())}),
            ),
        };
        if let Ok(v) = HeaderValue::from_str(&correlation) {
            resp.headers_mut().insert("client-request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&guid()) {
            resp.headers_mut().insert("x-ms-request-id", v);
        }
        resp
    }

    fn fault_response(
        &self,
        parts: &Parts,
        body_head: &[u8],
        fault: &StatusFault,
    ) -> Response<Body> {
        let status = fault.status;
        let resp = fault.answer(|| {
            let err = if status == StatusCode::UNAUTHORIZED {
                EntraError::new(
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided (injected fault).",
                )
            } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                EntraError::new(
                    "temporarily_unavailable",
                    90033,
                    "A transient error has occurred. Please try again.",
                )
            } else {
                EntraError::new(
                    "invalid_request",
                    90033,
                    "The request was rejected (injected fault).",
                )
            };
            self.error_response(err, &correlation_id(parts))
        });
        match route(&parts.method, parts.uri.path()) {
            Route::Token(_) => {
                let form = parse_form(body_head);
                let user = self.request_user(&form);
                self.count_token(&form, user, status.as_u16());
            }
            Route::DiscoveryV1(_) | Route::DiscoveryV2(_) => lock(&self.counters).discovery += 1,
            Route::Jwks(_) => lock(&self.counters).jwks += 1,
            Route::NotFound => {}
        }
        resp
    }
}
