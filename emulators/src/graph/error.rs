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
            let challenge = format!(
                "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"{GRAPH_APP_ID}\"",
                self.entra_url
            );
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert("www-authenticate", v);
            }
        }
        resp
    }
}
