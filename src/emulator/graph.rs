//! The Microsoft Graph emulator: the profile-photo endpoints, with Graph's token checks, limits,
//! error shape and headers, an in-memory photo store, counters and a ring of recorded writes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::directory::Directory;
use super::entra::{GRAPH_APP_ID, PUBLIC_GRAPH_RESOURCE, check_lifetime};
use super::keys::KeyStore;
use super::server::{ServerHandle, Service};
use super::util::{Body, drain, empty, graph_date, guid, json, lock, now_secs, read, write};

/// Graph's request size cap for photo uploads: a body of this many bytes or more gets 413.
pub const MAX_PHOTO_BYTES: usize = 4 * 1024 * 1024;

/// A stored photo.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredPhoto {
    /// The bytes as uploaded.
    pub bytes: Bytes,
    /// The media type: the declared `image/*` type, else sniffed from the bytes.
    pub content_type: String,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    /// Pixel width, when the format could be read (JPEG, PNG, GIF).
    pub width: Option<u32>,
    /// Pixel height, when the format could be read.
    pub height: Option<u32>,
}

/// One write request (PUT, PATCH or DELETE) as the Graph emulator received it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// The path exactly as received (still percent-encoded), without the query.
    pub path: String,
    /// The resolved target, e.g. `/users/{object id}/photo/$value`; `None` when it did not resolve.
    pub target: Option<String>,
    /// The route template, e.g. `/users/{id}/photo/$value`.
    pub template: String,
    /// The answered status.
    pub status: u16,
    /// `Content-Type` as sent.
    pub content_type: Option<String>,
    /// `Content-Length` as sent.
    pub content_length: Option<u64>,
    /// Bytes of body read (0 when the body was refused before reading).
    pub bytes: usize,
    /// SHA-256 (lowercase hex) of the body; empty when it was not read completely.
    pub sha256: String,
    /// `scp` of the bearer token, when it validated.
    pub scp: Option<String>,
    /// `roles` (space-joined) of an app-only bearer token.
    pub roles: Option<String>,
    /// `oid` of the bearer token, when it validated.
    pub oid: Option<String>,
    /// `appid` of the bearer token, when it validated.
    pub app_id: Option<String>,
    /// `client-request-id` as the client sent it (`None` when absent; the answer then carries a generated one).
    pub client_request_id: Option<String>,
    /// `request-id` answered.
    pub request_id: String,
    /// W3C `traceparent` as the client sent it, so tests can check trace propagation.
    pub traceparent: Option<String>,
}

/// One (method, path template, status) counter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphCount {
    /// HTTP method.
    pub method: String,
    /// Route template, e.g. `/users/{id}/photo/$value` (`other` when the path is not a photo path).
    pub path: String,
    /// Answered status.
    pub status: u16,
    /// How many.
    pub count: u64,
}

/// Graph request counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GraphCounters {
    /// Every non-control request.
    pub total: u64,
    /// By method.
    pub by_method: BTreeMap<String, u64>,
    /// By route template.
    pub by_path: BTreeMap<String, u64>,
    /// By answered status.
    pub by_status: BTreeMap<u16, u64>,
    /// By (method, template, status).
    pub requests: Vec<GraphCount>,
}

impl GraphCounters {
    /// The count for one (method, template, status).
    pub fn count(&self, method: &str, path: &str, status: u16) -> u64 {
        self.requests
            .iter()
            .filter(|c| c.method == method && c.path == path && c.status == status)
            .map(|c| c.count)
            .sum()
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Owner {
    Me,
    User(String),
    Group(String),
}

/// A parsed photo path.
#[derive(Clone, Debug, PartialEq)]
struct PhotoPath {
    owner: Owner,
    folder: Option<String>,
    contact: Option<String>,
    value: bool,
}

impl PhotoPath {
    fn parse(path: &str) -> Option<PhotoPath> {
        let segs: Vec<String> = path
            .strip_prefix('/')?
            .trim_end_matches('/')
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let is = |i: usize, name: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(name));
        let id = |i: usize| segs.get(i).filter(|s| !s.is_empty()).cloned();
        if !(is(0, "v1.0") || is(0, "beta")) {
            return None;
        }
        let mut i = 1;
        let owner = if is(i, "me") {
            i += 1;
            Owner::Me
        } else if is(i, "users") {
            i += 2;
            Owner::User(id(i - 1)?)
        } else if is(i, "groups") {
            i += 2;
            Owner::Group(id(i - 1)?)
        } else {
            return None;
        };
        let (mut folder, mut contact) = (None, None);
        if is(i, "contacts") {
            contact = Some(id(i + 1)?);
            i += 2;
        } else if is(i, "contactfolders") && is(i + 2, "contacts") {
            folder = Some(id(i + 1)?);
            contact = Some(id(i + 3)?);
            i += 4;
        }
        if contact.is_some() && matches!(owner, Owner::Group(_)) {
            return None;
        }
        if !is(i, "photo") {
            return None;
        }
        i += 1;
        let value = is(i, "$value");
        if value {
            i += 1;
        }
        (i == segs.len()).then_some(PhotoPath {
            owner,
            folder,
            contact,
            value,
        })
    }

    fn template(&self) -> String {
        let mut t = String::from(match self.owner {
            Owner::Me => "/me",
            Owner::User(_) => "/users/{id}",
            Owner::Group(_) => "/groups/{id}",
        });
        if self.folder.is_some() {
            t.push_str("/contactFolders/{id}");
        }
        if self.contact.is_some() {
            t.push_str("/contacts/{id}");
        }
        t.push_str(if self.value {
            "/photo/$value"
        } else {
            "/photo"
        });
        t
    }
}

/// The validated bearer token.
struct Caller {
    oid: String,
    upn: String,
    scp: Option<String>,
    roles: Option<String>,
    app_id: Option<String>,
}

impl Caller {
    fn app_only(&self) -> bool {
        self.scp.is_none()
    }

    fn has_any(&self, wanted: &[&str]) -> bool {
        let granted = self
            .scp
            .as_deref()
            .or(self.roles.as_deref())
            .unwrap_or_default();
        granted
            .split_whitespace()
            .any(|g| wanted.iter().any(|w| w.eq_ignore_ascii_case(g)))
    }
}

/// A Graph error answer.
struct GraphError {
    status: StatusCode,
    code: &'static str,
    message: String,
    challenge: bool,
}

impl GraphError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> GraphError {
        GraphError {
            status,
            code,
            message: message.into(),
            challenge: false,
        }
    }

    fn unauthorized(message: &str) -> GraphError {
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

/// What one request left for counting and recording.
#[derive(Default)]
struct Trace {
    template: Option<String>,
    target: Option<String>,
    bytes: usize,
    sha256: String,
    scp: Option<String>,
    roles: Option<String>,
    oid: Option<String>,
    app_id: Option<String>,
}

/// Shared state of the Graph emulator.
pub(crate) struct GraphState {
    pub url: String,
    entra_url: String,
    keys: Arc<KeyStore>,
    directory: Arc<Directory>,
    max_bytes: usize,
    validation: Validation,
    photos: RwLock<HashMap<String, StoredPhoto>>,
    counters: Mutex<HashMap<(String, String, u16), u64>>,
    requests: Mutex<VecDeque<RecordedRequest>>,
    capacity: usize,
}

impl GraphState {
    pub(crate) fn new(
        url: String,
        entra_url: String,
        keys: Arc<KeyStore>,
        directory: Arc<Directory>,
        max_bytes: usize,
        capacity: usize,
    ) -> GraphState {
        let mut validation = Validation::new(Algorithm::RS256);
        // Claims are checked by hand so each failure gets Graph's own message.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        GraphState {
            url,
            entra_url,
            keys,
            directory,
            max_bytes,
            validation,
            photos: RwLock::new(HashMap::new()),
            counters: Mutex::new(HashMap::new()),
            requests: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity,
        }
    }

    fn error_response(
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

    fn authenticate(&self, parts: &Parts) -> Result<Caller, GraphError> {
        let header = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if token.is_empty() {
            return Err(GraphError::unauthorized("Access token is empty."));
        }
        let jwt_header = jsonwebtoken::decode_header(token).map_err(|_| {
            GraphError::unauthorized("IDX14100: JWT is not well formed, there are no dots (.).")
        })?;
        let key = jwt_header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.find(kid))
            .ok_or_else(|| {
                GraphError::unauthorized("Access token validation failure. Invalid signing key.")
            })?;
        let claims = jsonwebtoken::decode::<Value>(token, &key.decoding, &self.validation)
            .map_err(|_| {
                GraphError::unauthorized("Access token validation failure. Invalid signature.")
            })?
            .claims;
        let s = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
        let aud = s("aud").unwrap_or_default();
        let aud_trimmed = aud.trim_end_matches('/');
        let aud_ok = aud_trimmed.eq_ignore_ascii_case(&self.url)
            || aud_trimmed.eq_ignore_ascii_case(PUBLIC_GRAPH_RESOURCE)
            || aud.eq_ignore_ascii_case(GRAPH_APP_ID);
        if !aud_ok {
            return Err(GraphError::unauthorized(
                "Access token validation failure. Invalid audience.",
            ));
        }
        let iss = s("iss").unwrap_or_default();
        let tenant = &self.directory.tenant_id;
        if iss != format!("{}/{tenant}/", self.entra_url)
            && iss != format!("{}/{tenant}/v2.0", self.entra_url)
        {
            return Err(GraphError::unauthorized(
                "Access token validation failure. Invalid issuer.",
            ));
        }
        if check_lifetime(&claims).is_err() {
            return Err(GraphError::unauthorized(
                "Lifetime validation failed, the token is expired.",
            ));
        }
        let roles = claims.get("roles").and_then(Value::as_array).map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        });
        let scp = s("scp");
        if scp.is_none() && roles.is_none() {
            return Err(GraphError::unauthorized(
                "Access token validation failure. The token has neither scp nor roles.",
            ));
        }
        Ok(Caller {
            oid: s("oid").unwrap_or_default(),
            upn: s("upn")
                .or_else(|| s("preferred_username"))
                .unwrap_or_default(),
            scp,
            roles,
            app_id: s("appid").or_else(|| s("azp")),
        })
    }

    fn authorize(&self, path: &PhotoPath, caller: &Caller, write: bool) -> Result<(), GraphError> {
        if path.owner == Owner::Me && caller.app_only() {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "/me request is only valid with delegated authentication flow.",
            ));
        }
        let own = match &path.owner {
            Owner::Me => true,
            Owner::User(id) => {
                !caller.app_only()
                    && (id.eq_ignore_ascii_case(&caller.oid)
                        || id.eq_ignore_ascii_case(&caller.upn))
            }
            Owner::Group(_) => false,
        };
        let mut allowed: Vec<&str> = Vec::new();
        if path.contact.is_some() {
            allowed.push("Contacts.ReadWrite");
            if !write {
                allowed.push("Contacts.Read");
            }
        } else if matches!(path.owner, Owner::Group(_)) {
            allowed.extend(["Group.ReadWrite.All", "ProfilePhoto.ReadWrite.All"]);
            if !write {
                allowed.extend(["Group.Read.All", "ProfilePhoto.Read.All"]);
            }
        } else {
            allowed.extend(["User.ReadWrite.All", "ProfilePhoto.ReadWrite.All"]);
            if own {
                allowed.push("User.ReadWrite");
            }
            if !write {
                allowed.extend([
                    "User.Read.All",
                    "User.ReadBasic.All",
                    "ProfilePhoto.Read.All",
                ]);
                if own {
                    allowed.push("User.Read");
                }
            }
        }
        if caller.has_any(&allowed) {
            Ok(())
        } else {
            Err(GraphError::new(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ))
        }
    }

    /// The store key and normalized target of a path, or 404.
    fn resolve(
        &self,
        path: &PhotoPath,
        caller: Option<&Caller>,
    ) -> Result<(String, String), GraphError> {
        let not_found = |id: &str| {
            GraphError::new(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                format!(
                    "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
                ),
            )
        };
        let user_id = match &path.owner {
            Owner::Group(id) => {
                let g = self.directory.group(id).ok_or_else(|| not_found(id))?;
                return Ok((
                    format!("g:{}", g.id),
                    format!("/groups/{}/photo/$value", g.id),
                ));
            }
            Owner::Me => {
                let oid = caller.map(|c| c.oid.as_str()).unwrap_or_default();
                self.directory
                    .user(oid)
                    .ok_or_else(|| not_found(oid))?
                    .id
                    .clone()
            }
            Owner::User(id) => self
                .directory
                .user(id)
                .ok_or_else(|| not_found(id))?
                .id
                .clone(),
        };
        let Some(contact) = &path.contact else {
            return Ok((
                format!("u:{user_id}"),
                format!("/users/{user_id}/photo/$value"),
            ));
        };
        let item_not_found = || {
            GraphError::new(
                StatusCode::NOT_FOUND,
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            )
        };
        if let Some(f) = &path.folder
            && !self.directory.has_folder(&user_id, f)
        {
            return Err(item_not_found());
        }
        let c = self
            .directory
            .contact(&user_id, path.folder.as_deref(), contact)
            .ok_or_else(item_not_found)?;
        let target = match &path.folder {
            Some(f) => format!(
                "/users/{user_id}/contactFolders/{f}/contacts/{}/photo/$value",
                c.id
            ),
            None => format!("/users/{user_id}/contacts/{}/photo/$value", c.id),
        };
        Ok((format!("c:{user_id}:{}", c.id), target))
    }

    async fn process(
        &self,
        parts: &Parts,
        body: &mut Option<Incoming>,
        trace: &mut Trace,
    ) -> Result<Response<Body>, GraphError> {
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
        let method_ok = match *method {
            Method::GET => true,
            Method::PUT | Method::PATCH => path.value,
            Method::DELETE => path.value && path.contact.is_none(),
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
            Method::GET if path.value => {
                let photo = read(&self.photos).get(&key).cloned().ok_or_else(|| {
                    GraphError::new(
                        StatusCode::NOT_FOUND,
                        "ImageNotFound",
                        "The photo wasn't found.",
                    )
                })?;
                let mut resp = Response::new(Full::new(photo.bytes));
                if let Ok(v) = HeaderValue::from_str(&photo.content_type) {
                    resp.headers_mut().insert(CONTENT_TYPE, v);
                }
                Ok(resp)
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
                let photo = self.upload(parts, body, trace).await?;
                write(&self.photos).insert(key, photo);
                Ok(empty(StatusCode::OK))
            }
        }
    }

    async fn upload(
        &self,
        parts: &Parts,
        body: &mut Option<Incoming>,
        trace: &mut Trace,
    ) -> Result<StoredPhoto, GraphError> {
        if parts.headers.contains_key(CONTENT_ENCODING) {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Content-Encoding is not supported for photo uploads.",
            ));
        }
        let declared = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !(declared.starts_with("image/") || declared == "application/octet-stream") {
            return Err(GraphError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "Content type '{declared}' is not supported: send image/jpeg (or another image/* type) or application/octet-stream."
                ),
            ));
        }
        let too_large = || {
            GraphError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!(
                    "The request body must be smaller than {} bytes.",
                    self.max_bytes
                ),
            )
        };
        let declared_len = content_length(parts);
        if declared_len.is_some_and(|n| n >= self.max_bytes as u64) {
            return Err(too_large());
        }
        let Some(mut incoming) = body.take() else {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "No request body.",
            ));
        };
        let capacity = declared_len
            .map_or(64 * 1024, |n| n as usize)
            .min(self.max_bytes);
        let mut buf = BytesMut::with_capacity(capacity);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match tokio::time::timeout_at(deadline, incoming.frame()).await {
                Err(_) => {
                    return Err(GraphError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "RequestTimeout",
                        "The request body was not received in time.",
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(_))) => {
                    return Err(GraphError::new(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "The request body could not be read.",
                    ));
                }
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        if buf.len() + data.len() >= self.max_bytes {
                            trace.bytes = buf.len() + data.len();
                            // Stop keeping bytes, but read the rest so the 413 is not lost to a reset.
                            drain(incoming, 0).await;
                            return Err(too_large());
                        }
                        buf.extend_from_slice(data);
                    }
                }
            }
        }
        let bytes = buf.freeze();
        trace.bytes = bytes.len();
        if bytes.is_empty() {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "The photo is empty.",
            ));
        }
        let sha256 = hex::encode(Sha256::digest(&bytes));
        trace.sha256 = sha256.clone();
        let content_type = if declared.starts_with("image/") {
            declared
        } else {
            sniff(&bytes)
                .unwrap_or("application/octet-stream")
                .to_string()
        };
        let (width, height) = dimensions(&bytes).unzip();
        Ok(StoredPhoto {
            bytes,
            content_type,
            sha256,
            width,
            height,
        })
    }

    fn metadata(&self, path: &PhotoPath, key: &str, photo: Option<&StoredPhoto>) -> Value {
        let entity = match key.split(':').collect::<Vec<_>>().as_slice() {
            ["g", id] => format!("groups('{id}')"),
            ["c", user, contact] => format!("users('{user}')/contacts('{contact}')"),
            [_, id, ..] => format!("users('{id}')"),
            _ => String::new(),
        };
        let _ = path;
        let context = format!("{}/v1.0/$metadata#{entity}/photo/$entity", self.url);
        match photo {
            Some(p) => {
                let (w, h) = (p.width.unwrap_or(0), p.height.unwrap_or(0));
                json!({
                    "@odata.context": context,
                    "@odata.mediaContentType": p.content_type,
                    "@odata.mediaEtag": format!("\"{}\"", &p.sha256[..16.min(p.sha256.len())]),
                    "id": format!("{w}X{h}"),
                    "height": h,
                    "width": w,
                })
            }
            // Graph answers a placeholder, not 404, when there is no photo.
            None => json!({
                "@odata.context": context,
                "@odata.mediaContentType": "image/gif",
                "id": "1X1",
                "height": 1,
                "width": 1,
            }),
        }
    }

    fn finish(
        &self,
        parts: &Parts,
        trace: Trace,
        mut resp: Response<Body>,
        request_id: &str,
        client_request_id: &str,
    ) -> Response<Body> {
        let status = resp.status().as_u16();
        let template = trace.template.unwrap_or_else(|| "other".to_string());
        *lock(&self.counters)
            .entry((parts.method.to_string(), template.clone(), status))
            .or_default() += 1;
        if matches!(parts.method, Method::PUT | Method::PATCH | Method::DELETE) {
            let rec = RecordedRequest {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                target: trace.target,
                template,
                status,
                content_type: parts
                    .headers
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                content_length: content_length(parts),
                bytes: trace.bytes,
                sha256: trace.sha256,
                scp: trace.scp,
                roles: trace.roles,
                oid: trace.oid,
                app_id: trace.app_id,
                client_request_id: sent_client_request_id(parts),
                request_id: request_id.to_string(),
                traceparent: parts
                    .headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            };
            let mut ring = lock(&self.requests);
            if self.capacity > 0 {
                if ring.len() >= self.capacity {
                    ring.pop_front();
                }
                ring.push_back(rec);
            }
        }
        let headers = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert("request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(client_request_id) {
            headers.insert("client-request-id", v);
        }
        headers.insert(
            "x-ms-ags-diagnostic",
            HeaderValue::from_static(r#"{"ServerInfo":{"DataCenter":"Sandbox","Slice":"E","Ring":"1","ScaleUnit":"000","RoleInstance":"photo-gateway-sandbox"}}"#),
        );
        resp
    }

    pub(crate) fn counters(&self) -> GraphCounters {
        let map = lock(&self.counters).clone();
        let mut out = GraphCounters::default();
        for ((method, path, status), count) in map {
            out.total += count;
            *out.by_method.entry(method.clone()).or_default() += count;
            *out.by_path.entry(path.clone()).or_default() += count;
            *out.by_status.entry(status).or_default() += count;
            out.requests.push(GraphCount {
                method,
                path,
                status,
                count,
            });
        }
        out.requests
            .sort_by(|a, b| (&a.path, &a.method, a.status).cmp(&(&b.path, &b.method, b.status)));
        out
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).iter().cloned().collect()
    }

    /// Resolves a path like `/users/{id}`, `/groups/{id}/photo/$value` or `/v1.0/users/{u}/contactFolders/{f}/contacts/{c}`.
    fn key_of(&self, path: &str) -> Option<String> {
        let p = path.trim_end_matches('/');
        let p = p.strip_prefix("/v1.0").unwrap_or(p);
        let p = p
            .strip_suffix("/photo/$value")
            .or_else(|| p.strip_suffix("/photo"))
            .unwrap_or(p);
        let parsed = PhotoPath::parse(&format!("/v1.0{p}/photo/$value"))?;
        self.resolve(&parsed, None).ok().map(|(key, _)| key)
    }
}

fn write_lock_remove(photos: &RwLock<HashMap<String, StoredPhoto>>, key: &str) {
    write(photos).remove(key);
}

fn content_length(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn sent_client_request_id(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The client's `client-request-id` when usable, else a fresh GUID (as Graph does).
fn client_request_id(parts: &Parts) -> String {
    sent_client_request_id(parts)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(guid)
}

/// The image format of `bytes`, from its magic number.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"GIF8") {
        Some("image/gif")
    } else {
        None
    }
}

/// Width and height from a JPEG SOF, PNG IHDR or GIF header.
fn dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let be16 = |i: usize| -> Option<u32> {
        Some(u32::from(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])))
    };
    match sniff(b)? {
        "image/png" => {
            let w = u32::from_be_bytes(b.get(16..20)?.try_into().ok()?);
            let h = u32::from_be_bytes(b.get(20..24)?.try_into().ok()?);
            Some((w, h))
        }
        "image/gif" => {
            let w = u32::from(u16::from_le_bytes(b.get(6..8)?.try_into().ok()?));
            let h = u32::from(u16::from_le_bytes(b.get(8..10)?.try_into().ok()?));
            Some((w, h))
        }
        _ => {
            let mut i = 2;
            while i + 3 < b.len() {
                if b[i] != 0xFF {
                    return None;
                }
                let marker = b[i + 1];
                if marker == 0xFF {
                    i += 1;
                    continue;
                }
                if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
                    return Some((be16(i + 7)?, be16(i + 5)?));
                }
                if matches!(marker, 0xD0..=0xD9 | 0x01) {
                    i += 2;
                    continue;
                }
                i += 2 + be16(i + 2)? as usize;
            }
            None
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

    fn control(&self, method: &Method, path: &str, _body: &[u8]) -> Option<Response<Body>> {
        Some(match (method, path) {
            (&Method::GET, "/_emulator/counters") => json(StatusCode::OK, &json!(self.counters())),
            (&Method::GET, "/_emulator/requests") => json(StatusCode::OK, &json!(self.requests())),
            (&Method::DELETE, "/_emulator/requests") => {
                lock(&self.requests).clear();
                empty(StatusCode::NO_CONTENT)
            }
            _ => return None,
        })
    }

    fn fault_response(
        &self,
        parts: &Parts,
        _body_head: &[u8],
        status: StatusCode,
        retry_after: Option<&str>,
        body: Option<&str>,
        garbage: bool,
    ) -> Response<Body> {
        let request_id = guid();
        let client_request_id = client_request_id(parts);
        let mut resp = if let Some(r) = super::server::verbatim_fault_body(body, garbage) {
            r
        } else {
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
        };
        *resp.status_mut() = status;
        if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
            resp.headers_mut().insert(RETRY_AFTER, v);
        }
        let trace = Trace {
            template: PhotoPath::parse(parts.uri.path()).map(|p| p.template()),
            ..Trace::default()
        };
        self.finish(parts, trace, resp, &request_id, &client_request_id)
    }

    fn reset(&self) {
        lock(&self.counters).clear();
        lock(&self.requests).clear();
        write(&self.photos).clear();
    }
}

/// The Microsoft Graph emulator: a handle to a running server (cheap to clone).
#[derive(Clone)]
pub struct GraphEmulator {
    pub(crate) state: Arc<GraphState>,
    pub(crate) server: Arc<ServerHandle>,
}

impl GraphEmulator {
    /// `https://127.0.0.1:PORT` (without `/v1.0`); also the Graph resource its tokens are for.
    pub fn url(&self) -> String {
        self.state.url.clone()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.server.addr.port()
    }

    /// Adds a fault rule; returns its id.
    pub fn add_fault(&self, rule: super::FaultRule) -> u64 {
        self.server.faults.add(rule)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.server.faults.clear();
    }

    /// The active fault rules.
    pub fn faults(&self) -> Vec<super::ActiveFault> {
        self.server.faults.list()
    }

    /// Stops listening for `duration` (ECONNREFUSED; open connections reset), then listens again.
    pub async fn refuse_connections(&self, duration: Duration) {
        self.server.refuse(duration).await;
    }

    /// The counters.
    pub fn counters(&self) -> GraphCounters {
        self.state.counters()
    }

    /// The recorded write requests, oldest first (bounded ring).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// The stored photo of a target such as `/users/{id or upn}`, `/groups/{id}`,
    /// `/users/{u}/contacts/{c}` or `/users/{u}/contactFolders/{f}/contacts/{c}` (with or without
    /// `/v1.0` and `/photo/$value`).
    pub fn photo(&self, target: &str) -> Option<StoredPhoto> {
        let key = self.state.key_of(target)?;
        read(&self.state.photos).get(&key).cloned()
    }

    /// The stored photo bytes of a user (object id or UPN).
    pub fn photo_of_user(&self, user: &str) -> Option<Bytes> {
        self.photo(&format!("/users/{user}")).map(|p| p.bytes)
    }

    /// The stored photo bytes of a group.
    pub fn photo_of_group(&self, group_id: &str) -> Option<Bytes> {
        self.photo(&format!("/groups/{group_id}")).map(|p| p.bytes)
    }

    /// The stored photo bytes of a contact of `user` (object id or UPN), in `folder` or the default folder.
    pub fn photo_of_contact(
        &self,
        user: &str,
        folder: Option<&str>,
        contact_id: &str,
    ) -> Option<Bytes> {
        let target = match folder {
            Some(f) => format!("/users/{user}/contactFolders/{f}/contacts/{contact_id}"),
            None => format!("/users/{user}/contacts/{contact_id}"),
        };
        self.photo(&target).map(|p| p.bytes)
    }

    /// Forgets the recorded write requests.
    pub fn clear_requests(&self) {
        lock(&self.state.requests).clear();
    }

    /// Stores a photo for a target (see [`GraphEmulator::photo`]); false when the target does not exist.
    pub fn set_photo(&self, target: &str, bytes: &[u8], content_type: &str) -> bool {
        let Some(key) = self.state.key_of(target) else {
            return false;
        };
        let bytes = Bytes::copy_from_slice(bytes);
        let (width, height) = dimensions(&bytes).unzip();
        let photo = StoredPhoto {
            sha256: hex::encode(Sha256::digest(&bytes)),
            bytes,
            content_type: content_type.to_string(),
            width,
            height,
        };
        write(&self.state.photos).insert(key, photo);
        true
    }

    /// Clears faults, counters, recorded requests and photos.
    pub fn reset(&self) {
        self.server.faults.clear();
        self.state.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seven_paths_and_their_spellings() {
        let p = PhotoPath::parse("/v1.0/ME/Photo/%24value").unwrap();
        assert_eq!(p.template(), "/me/photo/$value");
        let p = PhotoPath::parse(
            "/v1.0/users/alex_fabrikam.com%23EXT%23@contoso.onmicrosoft.com/photo/$value",
        )
        .unwrap();
        assert_eq!(
            p.owner,
            Owner::User("alex_fabrikam.com#EXT#@contoso.onmicrosoft.com".into())
        );
        let p = PhotoPath::parse("/v1.0/users/u/contactFolders/f/contacts/c/photo/$value").unwrap();
        assert_eq!(
            p.template(),
            "/users/{id}/contactFolders/{id}/contacts/{id}/photo/$value"
        );
        assert_eq!(p.folder.as_deref(), Some("f"));
        assert!(PhotoPath::parse("/v1.0/groups/g/contacts/c/photo/$value").is_none());
        assert!(PhotoPath::parse("/v1.0/users//photo/$value").is_none());
        assert!(PhotoPath::parse("/v1.0/me/photo/$value/extra").is_none());
        assert!(!PhotoPath::parse("/v1.0/me/photo").unwrap().value);
    }

    #[test]
    fn reads_jpeg_dimensions() {
        let jpeg = super::super::sample_jpeg(24, 16, "x");
        assert_eq!(dimensions(&jpeg), Some((24, 16)));
    }
}
