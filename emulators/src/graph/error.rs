//! Graph's error answer: `{"error": {"code", "message", "innerError"}}`, with a challenge on 401.

use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use serde_json::json;

use super::GraphState;
use crate::entra::GRAPH_APP_ID;
use crate::util::{Body, graph_date, json, now_secs};

/// A Graph error answer.
pub(super) struct GraphError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) challenge: bool,
    /// A continuous-access-evaluation claims challenge (JSON), sent base64 in the challenge.
    pub(super) claims: Option<String>,
}

impl GraphError {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> GraphError {
        GraphError {
            status,
            code,
            message: message.into(),
            challenge: false,
            claims: None,
        }
    }

    /// Graph's answer when the token lacks every permission that would allow the operation.
    pub(super) fn insufficient_privileges() -> GraphError {
        GraphError::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    /// Graph's answer to a token revoked by continuous access evaluation: 401 with a claims
    /// challenge the client passes to Entra for a newer token.
    pub(super) fn revoked(not_before: u64) -> GraphError {
        GraphError {
            claims: Some(format!(
                r#"{{"access_token":{{"nbf":{{"essential":true,"value":"{not_before}"}}}}}}"#
            )),
            ..GraphError::unauthorized(
                "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokensRevoked",
            )
        }
    }

    pub(super) fn unauthorized(message: &str) -> GraphError {
        GraphError {
            challenge: true,
            ..GraphError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                message,
            )
        }
    }
}

impl GraphState {
    pub(super) fn error_response(
        &self,
        e: &GraphError,
        request_id: &str,
        client_request_id: &str,
    ) -> Response<Body> {
        let mut resp = json(
            e.status,
            &json!({"error": {
                "code": e.code,
                "message": e.message,
                "innerError": {
                    "date": graph_date(now_secs()),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                }
            }}),
        );
        if e.challenge {
            let mut challenge = format!(
                "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"{GRAPH_APP_ID}\"",
                self.entra_url
            );
            if let Some(claims) = &e.claims {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD.encode(claims);
                challenge.push_str(&format!(
                    ", error=\"insufficient_claims\", claims=\"{b64}\""
                ));
            }
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert("www-authenticate", v);
            }
        }
        resp
    }
}
