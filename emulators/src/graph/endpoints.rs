//! The photo endpoints: method and path checks, then authenticate, authorize, resolve, and read,
//! write or delete the photo; user requests go to `users.rs`; and the answer to a fault.

use std::sync::atomic::Ordering;

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};

use super::error::GraphError;
use super::paths::PhotoPath;
use super::recording::{Trace, client_request_id};
use super::store::write_lock_remove;
use super::teams::{team_path, team_template};
use super::users::{USER_TEMPLATE, user_path};
use super::{GraphState, NO_MAILBOX_MAX_PHOTO_BYTES};
use crate::faults::StatusFault;
use crate::server::Service;
use crate::util::{Body, drain, empty, guid, json, read, write};

impl GraphState {
    /// Serves a photo request; the error is answered in Graph's shape by the caller.
    async fn process(
        &self,
        parts: &Parts,
        body: &mut Option<Incoming>,
        trace: &mut Trace,
    ) -> Result<Response<Body>, GraphError> {
        if let Some((version, id)) = user_path(parts.uri.path()) {
            return self.user_request(parts, &version, &id, trace);
        }
        if let Some(team) = team_path(parts.uri.path()) {
            return self.team_request(parts, body, team, trace).await;
        }
        let Some(path) = PhotoPath::parse(parts.uri.path()) else {
            let first = parts
                .uri
                .path()
                .trim_start_matches('/')
                .split('/')
                .nth(1)
                .unwrap_or_default();
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("Resource not found for the segment '{first}'."),
            ));
        };
        trace.template = Some(path.template());
        let method = &parts.method;
        let writes = *method != Method::GET && *method != Method::HEAD;
        let sized = path.size.is_some() || path.list;
        let method_ok = match *method {
            Method::GET => true,
            Method::PUT | Method::PATCH => path.value && !sized,
            Method::DELETE => path.value && path.contact.is_none() && !sized,
            _ => false,
        };
        if !method_ok {
            return Err(GraphError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                format!("The HTTP method '{method}' is not allowed for the requested resource."),
            ));
        }
        let caller = self.authenticate(parts)?;
        trace.scp = caller.scp.clone();
        trace.roles = caller.roles.clone();
        trace.oid = Some(caller.oid.clone());
        trace.app_id = caller.app_id.clone();
        self.authorize(&path, &caller, writes)?;
        let (key, target) = self.resolve(&path, Some(&caller))?;
        trace.target = Some(target);
        match *method {
            Method::GET if path.list => {
                let photo = read(&self.photos).get(&key).cloned();
                Ok(json(StatusCode::OK, &self.sizes_list(photo.as_ref())))
            }
            Method::GET if path.size.is_some() => self.sized(parts, &path, &key).await,
            Method::GET if path.value => {
                let photo = read(&self.photos).get(&key).cloned().ok_or_else(|| {
                    GraphError::new(
                        StatusCode::NOT_FOUND,
                        "ImageNotFound",
                        "The photo wasn't found.",
                    )
                })?;
                self.wait_while_reads_held().await;
                Ok(photo.answer(parts, None, photo.bytes.clone(), &photo.content_type))
            }
            Method::GET => {
                let photo = read(&self.photos).get(&key).cloned();
                Ok(json(
                    StatusCode::OK,
                    &self.metadata(&path, &key, photo.as_ref()),
                ))
            }
            Method::DELETE => {
                write_lock_remove(&self.photos, &key);
                Ok(empty(StatusCode::NO_CONTENT))
            }
            _ => {
                let _writing = self.writing(trace.target.as_deref().unwrap_or_default());
                let photo = self.upload(parts, body, trace).await?;
                let latency = self.write_latency_ms.load(Ordering::Acquire);
                if latency > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
                }
                if let Some(user_id) = key.strip_prefix("u:")
                    && !self.directory.has_mailbox(user_id)
                    && photo.bytes.len() > NO_MAILBOX_MAX_PHOTO_BYTES
                {
                    // What Graph answers for an Entra-ID-only account's photo over about 100 KB
                    // (microsoft-graph-docs #8236): a 404 that does not say why.
                    return Err(GraphError::new(
                        StatusCode::NOT_FOUND,
                        "ImageNotFound",
                        "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
                    ));
                }
                write(&self.photos).insert(key, photo);
                Ok(empty(StatusCode::OK))
            }
        }
    }
}

impl Service for GraphState {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let request_id = guid();
        let client_request_id = client_request_id(&parts);
        let mut body = Some(body);
        let mut trace = Trace::default();
        let resp = match self.process(&parts, &mut body, &mut trace).await {
            Ok(r) => r,
            Err(e) => self.error_response(&e, &request_id, &client_request_id),
        };
        if let Some(rest) = body.take() {
            // An early answer to an upload: read (and discard) what the client is still sending.
            drain(rest, 0).await;
        }
        self.finish(&parts, trace, resp, &request_id, &client_request_id)
    }

    fn fault_response(
        &self,
        parts: &Parts,
        _body_head: &[u8],
        fault: &StatusFault,
    ) -> Response<Body> {
        let request_id = guid();
        let client_request_id = client_request_id(parts);
        let status = fault.status;
        let resp = fault.answer(|| {
            let (code, message) = match status.as_u16() {
                400 => ("BadRequest", "Bad request (injected fault)."),
                401 => (
                    "InvalidAuthenticationToken",
                    "Access token validation failure (injected fault).",
                ),
                403 => (
                    "Authorization_RequestDenied",
                    "Insufficient privileges to complete the operation.",
                ),
                404 => (
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                ),
                409 => ("ErrorConflict", "Conflict (injected fault)."),
                429 => ("TooManyRequests", "Too many requests (injected fault)."),
                503 => (
                    "ServiceUnavailable",
                    "Service unavailable (injected fault).",
                ),
                504 => ("GatewayTimeout", "Gateway timeout (injected fault)."),
                _ => ("UnknownError", "Injected fault."),
            };
            let mut e = GraphError::new(status, code, message);
            e.challenge = status == StatusCode::UNAUTHORIZED;
            self.error_response(&e, &request_id, &client_request_id)
        });
        let path = parts.uri.path();
        let template = match user_path(path) {
            Some(_) => Some(USER_TEMPLATE.to_string()),
            None => PhotoPath::parse(path)
                .map(|p| p.template())
                .or_else(|| team_template(path)),
        };
        let trace = Trace {
            template,
            ..Trace::default()
        };
        self.finish(parts, trace, resp, &request_id, &client_request_id)
    }
}
