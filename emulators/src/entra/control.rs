//! Entra's side of the control API: counters, injected token errors, key rotation, minting tokens
//! and assertions, client certificates, token lifetime; and what a reset forgets.

use hyper::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::minting::default_ttl;
use super::{CallerTokenSpec, EntraCounters, EntraState, TokenErrorKind};
use crate::control::{ControlApi, bad_request, parse_control};
use crate::util::{Body, decoded_segments, empty, json, lock, write};

impl ControlApi for EntraState {
    fn control(&self, method: &Method, path: &str, body: &[u8]) -> Option<Response<Body>> {
        let segs = decoded_segments(path.trim_start_matches("/_emulator/"));
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        Some(match (method, segs.as_slice()) {
            (&Method::GET, ["counters"]) => json(StatusCode::OK, &json!(self.counters())),
            (&Method::POST, ["users", user, "token-error"]) => {
                #[derive(Deserialize)]
                struct Req {
                    kind: TokenErrorKind,
                }
                match parse_control::<Req>(body) {
                    Ok(r) => {
                        self.set_user_error(user, Some(r.kind));
                        empty(StatusCode::NO_CONTENT)
                    }
                    Err(e) => bad_request(&e),
                }
            }
            (&Method::DELETE, ["users", user, "token-error"]) => {
                self.set_user_error(user, None);
                empty(StatusCode::NO_CONTENT)
            }
            (&Method::POST, ["keys", "rotate"]) => match self.rotate() {
                Ok(kid) => json(StatusCode::OK, &json!({"kid": kid})),
                Err(e) => json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"error": e.to_string()}),
                ),
            },
            (&Method::GET, ["keys"]) => {
                let set = self.keys.get();
                json(
                    StatusCode::OK,
                    &json!({
                        "current_kid": set.current.kid,
                        "public_key_pem": set.current.public_pem,
                        "kids": std::iter::once(&set.current).chain(set.previous.iter()).map(|k| k.kid.clone()).collect::<Vec<_>>(),
                    }),
                )
            }
            (&Method::POST, ["tokens"]) => match parse_control::<CallerTokenSpec>(body) {
                Ok(spec) => json(
                    StatusCode::OK,
                    &json!({"access_token": self.caller_token(&spec), "expires_in": spec.ttl_secs}),
                ),
                Err(e) => bad_request(&e),
            },
            (&Method::POST, ["graph-tokens"]) => {
                #[derive(Deserialize)]
                struct Req {
                    user: Option<String>,
                    #[serde(default)]
                    scopes: Vec<String>,
                    /// Application permissions: an app-only token (no user).
                    roles: Option<Vec<String>>,
                }
                match parse_control::<Req>(body) {
                    Ok(Req {
                        roles: Some(roles), ..
                    }) => {
                        let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
                        json(
                            StatusCode::OK,
                            &json!({"access_token": self.graph_app_token(&roles)}),
                        )
                    }
                    Ok(Req {
                        user: Some(user),
                        scopes,
                        ..
                    }) => {
                        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                        json(
                            StatusCode::OK,
                            &json!({"access_token": self.graph_token(&user, &scopes)}),
                        )
                    }
                    Ok(_) => bad_request("`user` (with `scopes`) or `roles` is required"),
                    Err(e) => bad_request(&e),
                }
            }
            (&Method::POST, ["federated-assertions"]) => {
                #[derive(Deserialize)]
                struct Req {
                    subject: Option<String>,
                    #[serde(default = "default_ttl")]
                    ttl_secs: i64,
                }
                match parse_control::<Req>(body) {
                    Ok(r) => json(
                        StatusCode::OK,
                        &json!({"assertion": self.federated_assertion(r.subject.as_deref(), r.ttl_secs)}),
                    ),
                    Err(e) => bad_request(&e),
                }
            }
            (&Method::POST, ["client-certificates"]) => {
                #[derive(Deserialize)]
                struct Req {
                    certificate_pem: Option<String>,
                }
                match parse_control::<Req>(body) {
                    Ok(Req {
                        certificate_pem: Some(pem),
                    }) => match self.register_certificate(&pem) {
                        Ok(t) => json(StatusCode::CREATED, &json!({"x5t#S256": t})),
                        Err(e) => bad_request(&e),
                    },
                    Ok(Req {
                        certificate_pem: None,
                    }) => match self.create_certificate() {
                        Ok(c) => json(StatusCode::CREATED, &json!(c)),
                        Err(e) => json(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": e})),
                    },
                    Err(e) => bad_request(&e),
                }
            }
            (&Method::PUT, ["app-permissions"]) => {
                #[derive(Deserialize)]
                struct Req {
                    roles: Vec<String>,
                }
                match parse_control::<Req>(body) {
                    Ok(r) => {
                        self.set_app_permissions(Some(r.roles));
                        empty(StatusCode::NO_CONTENT)
                    }
                    Err(e) => bad_request(&e),
                }
            }
            (&Method::PUT, ["token-lifetime"]) => {
                #[derive(Deserialize)]
                struct Req {
                    expires_in: u64,
                }
                match parse_control::<Req>(body) {
                    Ok(r) => {
                        self.set_lifetime(r.expires_in);
                        empty(StatusCode::NO_CONTENT)
                    }
                    Err(e) => bad_request(&e),
                }
            }
            _ => return None,
        })
    }
    fn reset(&self) {
        *lock(&self.counters) = EntraCounters::default();
        write(&self.user_errors).clear();
        self.set_app_permissions(None);
        self.set_lifetime(self.default_lifetime);
    }
}
