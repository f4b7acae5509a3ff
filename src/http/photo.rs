//! The photo update handler and its OpenAPI description (one operation per Graph path).

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde::Deserialize;
use tracing_actix_web::RootSpan;
use utoipa::ToSchema;

use crate::error::{ApiError, Problem};
use crate::graph::{PhotoTarget, TargetError};
use crate::service::{PhotoUpdate, UploadReceipt};
use crate::state::AppState;
use crate::telemetry::{RequestId, RouteTemplate};

/// PUT or PATCH a photo on any of Graph's seven `…/photo/$value` paths.
pub async fn update_photo(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    span: RootSpan,
) -> Result<HttpResponse, ApiError> {
    let caller = state.photos.authenticate(&req).await?;
    span.record("client_app", caller.client_app_id.as_str());
    span.record("tenant_id", caller.tenant_id.as_str());
    let target = PhotoTarget::parse(req.path()).map_err(|e| match e {
        TargetError::NoSuchRoute => ApiError::NotFound(format!(
            "{} is not one of Graph's photo update paths (see /docs)",
            req.path()
        )),
        TargetError::InvalidId(why) => ApiError::InvalidTarget(why),
    })?;
    span.record("http.route", target.template());
    span.record("target_kind", target.kind());
    req.extensions_mut()
        .insert(RouteTemplate(target.template()));
    let request_id = req.extensions().get::<RequestId>().cloned();
    let request_id = request_id
        .map(|r| r.0)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string().into());
    let _in_flight = state.in_flight();
    let result = state
        .photos
        .update(
            PhotoUpdate {
                caller: &caller,
                target: &target,
                method: reqwest::Method::from_bytes(req.method().as_str().as_bytes())
                    .map_err(|_| ApiError::MethodNotAllowed("use PUT or PATCH".into()))?,
                headers: req.headers(),
                request_id: &request_id,
            },
            payload,
        )
        .await;
    if matches!(result, Err(ApiError::BodyTimeout(_))) {
        super::conn::stop_reading(&req);
    }
    let receipt = result?;
    span.record("photo_bytes", receipt.bytes);
    Ok(HttpResponse::Ok().json(receipt))
}

/// The multipart form: exactly one file part named `photo`.
#[derive(Deserialize, ToSchema)]
pub struct PhotoForm {
    /// The JPEG file.
    #[schema(value_type = String, format = Binary, content_media_type = "image/jpeg")]
    pub photo: Vec<u8>,
}

/// The raw JPEG bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct JpegBytes(pub Vec<u8>);

/// Declares the OpenAPI operation for one Graph path (PUT and PATCH share it).
macro_rules! photo_operation {
    ($fn_name:ident, $path:literal, $summary:literal, [$( ($pname:literal, $pdesc:literal) ),*]) => {
        #[utoipa::path(
            method(put, patch),
            path = $path,
            tag = "photos",
            summary = $summary,
            description = "Sets the photo exactly as Graph's `PUT|PATCH …/photo/$value` does, on behalf of the signed-in user. \
The method is forwarded as received. Segment names are case-insensitive and `%24value` equals `$value`. \
Send `multipart/form-data` with one file part named `photo`, or the raw JPEG bytes as `image/jpeg` or `application/octet-stream`. \
The photo must be a JPEG smaller than 4,194,304 bytes (configurable).",
            params(
                $( ($pname = String, Path, description = $pdesc), )*
                ("X-Request-Id" = Option<String>, Header, description = "Request id to use (1–128 of `[A-Za-z0-9._:-]`); echoed and sent to Graph as `client-request-id`"),
                ("client-request-id" = Option<String>, Header, description = "Same as `X-Request-Id`, as Graph's SDKs send it")
            ),
            request_body(
                description = "The photo: a multipart form with one `photo` file part, or the raw JPEG bytes",
                content(
                    (PhotoForm = "multipart/form-data"),
                    (JpegBytes = "image/jpeg"),
                    (JpegBytes = "application/octet-stream")
                )
            ),
            responses(
                (status = 200, description = "Graph accepted the photo", body = UploadReceipt,
                    headers(("X-Request-Id" = String, description = "The request id"))),
                (status = 400, description = "`invalid-request` (Authorization malformed, duplicated, or a token in the query or a cookie), `invalid-target` (bad path id), `invalid-body` (not one `photo` part), or `graph-rejected` (Graph 400)", body = Problem, content_type = "application/problem+json"),
                (status = 401, description = "`missing-token`, `invalid-token` or `claims-challenge`; see `WWW-Authenticate`", body = Problem, content_type = "application/problem+json",
                    headers(("WWW-Authenticate" = String, description = "RFC 6750 Bearer challenge"))),
                (status = 403, description = "`user-token-required`, `insufficient-scope`, `caller-not-allowed`, `consent-required`, or `graph-rejected` (Graph 403)", body = Problem, content_type = "application/problem+json",
                    headers(("WWW-Authenticate" = String, description = "RFC 6750 Bearer challenge (scope problems)"))),
                (status = 404, description = "`graph-rejected`: Graph does not know the object, or `not-found`", body = Problem, content_type = "application/problem+json"),
                (status = 405, description = "`method-not-allowed`: only PUT and PATCH", body = Problem, content_type = "application/problem+json"),
                (status = 408, description = "`body-timeout`: the body was not received in time", body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "`graph-rejected` (Graph 409)", body = Problem, content_type = "application/problem+json"),
                (status = 413, description = "`photo-too-large`", body = Problem, content_type = "application/problem+json"),
                (status = 415, description = "`unsupported-media-type`: not a JPEG, or a Content-Encoding", body = Problem, content_type = "application/problem+json"),
                (status = 429, description = "`rate-limited`", body = Problem, content_type = "application/problem+json",
                    headers(("Retry-After" = u64, description = "Seconds to wait"))),
                (status = 500, description = "`gateway-credential-rejected`: an operator must fix the gateway's credential", body = Problem, content_type = "application/problem+json"),
                (status = 502, description = "`graph-rejected-token`, `graph-error`, `graph-unreachable` or `identity-rejected`", body = Problem, content_type = "application/problem+json"),
                (status = 503, description = "`identity-unavailable`, `graph-unavailable`, `not-ready` or `overloaded`", body = Problem, content_type = "application/problem+json",
                    headers(("Retry-After" = u64, description = "Seconds to wait"))),
                (status = 504, description = "`graph-timeout`", body = Problem, content_type = "application/problem+json")
            ),
            security(("bearer" = []))
        )]
        #[allow(dead_code)]
        fn $fn_name() {}
    };
}

photo_operation!(
    me_photo,
    "/v1.0/me/photo/$value",
    "Set the signed-in user's photo",
    []
);
photo_operation!(
    user_photo,
    "/v1.0/users/{user}/photo/$value",
    "Set a user's photo",
    [(
        "user",
        "Object id or userPrincipalName (guest UPNs with `#EXT#` percent-encoded)"
    )]
);
photo_operation!(
    group_photo,
    "/v1.0/groups/{group}/photo/$value",
    "Set a group's photo",
    [("group", "Group object id")]
);
photo_operation!(
    my_contact_photo,
    "/v1.0/me/contacts/{contact}/photo/$value",
    "Set a photo of one of the signed-in user's contacts",
    [("contact", "Contact id")]
);
photo_operation!(
    user_contact_photo,
    "/v1.0/users/{user}/contacts/{contact}/photo/$value",
    "Set a photo of a user's contact",
    [
        ("user", "Object id or userPrincipalName"),
        ("contact", "Contact id")
    ]
);
photo_operation!(
    my_folder_contact_photo,
    "/v1.0/me/contactfolders/{folder}/contacts/{contact}/photo/$value",
    "Set a photo of a contact in one of the signed-in user's contact folders",
    [("folder", "Contact folder id"), ("contact", "Contact id")]
);
photo_operation!(
    user_folder_contact_photo,
    "/v1.0/users/{user}/contactfolders/{folder}/contacts/{contact}/photo/$value",
    "Set a photo of a contact in a user's contact folder",
    [
        ("user", "Object id or userPrincipalName"),
        ("folder", "Contact folder id"),
        ("contact", "Contact id")
    ]
);
