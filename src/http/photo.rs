//! The photo update handler and its OpenAPI description (one operation per Graph path, teams too).

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Deserialize;
use tracing_actix_web::RootSpan;
use utoipa::ToSchema;

use super::openapi_errors::UploadErrors;
use crate::auth::Credentials;
use crate::error::{ApiError, target_error};
use crate::graph::{PhotoTarget, PhotoView};
use crate::image_request::ImageRequest;
use crate::service::{PhotoUpdate, UploadReceipt};
use crate::state::AppState;
use crate::telemetry::{RequestId, RouteTemplate};
use crate::upload::{BodyError, BodyHeaders, BodyStream};

/// Where the request could carry a token.
pub(super) fn credentials(req: &HttpRequest) -> Credentials<'_> {
    let all = |name| {
        req.headers()
            .get_all(name)
            .map(|v| v.as_bytes())
            .collect::<Vec<_>>()
    };
    Credentials {
        query: req.query_string(),
        authorization: all(header::AUTHORIZATION),
        cookies: all(header::COOKIE),
    }
}

/// The headers that say how to read the body.
fn body_headers(req: &HttpRequest) -> BodyHeaders<'_> {
    let raw = |name| req.headers().get(name).map(|v| v.as_bytes());
    BodyHeaders {
        content_type: raw(header::CONTENT_TYPE),
        content_encoding: raw(header::CONTENT_ENCODING),
        content_length: raw(header::CONTENT_LENGTH).and_then(BodyHeaders::parse_length),
    }
}

/// actix's payload as the project's own body stream.
fn body_stream(payload: web::Payload) -> BodyStream {
    use actix_web::error::PayloadError;
    BodyStream::new(payload.map(|chunk| {
        chunk.map_err(|e| match e {
            PayloadError::Incomplete(_) => BodyError::Incomplete,
            PayloadError::Overflow => BodyError::Overflow,
            other => BodyError::Other(other.to_string()),
        })
    }))
}

/// PUT or PATCH a photo on any of Graph's seven `…/photo/$value` update paths or a team's.
pub async fn update_photo(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    span: RootSpan,
) -> Result<HttpResponse, ApiError> {
    let caller = state.photos.authenticate(&credentials(&req)).await?;
    span.record("client_app", caller.client_app_id.as_str());
    span.record("tenant_id", caller.tenant_id.as_str());
    let parsed = PhotoTarget::parse_view(req.path()).map_err(|e| target_error(e, req.path()));
    let target = match parsed {
        Ok((t, PhotoView::Value)) => t,
        // Metadata, sizes: read-only views.
        Ok((t, view)) => {
            let allow = view.allow(t.kind());
            return Err(ApiError::MethodNotAllowed(
                format!("{} is not supported here: use {allow}", req.method()),
                allow,
            ));
        }
        Err(e) => {
            state
                .photos
                .refused_before_target(&caller, req.method().as_str(), req.path(), &e);
            return Err(e);
        }
    };
    span.record("http.route", target.template());
    span.record("target_kind", target.kind().as_str());
    req.extensions_mut()
        .insert(RouteTemplate(target.template()));
    let request_id = req.extensions().get::<RequestId>().cloned();
    let request_id = request_id
        .map(|r| r.0)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string().into());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).map_err(|_| {
        ApiError::MethodNotAllowed("use PUT or PATCH".into(), "GET, PUT, PATCH, DELETE")
    })?;
    let image = match ImageRequest::parse(req.query_string()) {
        Ok(i) => i,
        Err(e) => {
            state
                .photos
                .refused_before_target(&caller, req.method().as_str(), req.path(), &e);
            return Err(e);
        }
    };
    let _in_flight = state.in_flight();
    let receipt = state
        .photos
        .update(
            PhotoUpdate {
                caller: &caller,
                target: &target,
                method,
                body: body_headers(&req),
                traceparent: req
                    .headers()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok()),
                request_id: &request_id,
                image,
            },
            body_stream(payload),
        )
        .await?;
    span.record("photo_bytes", receipt.bytes);
    Ok(HttpResponse::Ok().json(receipt))
}

/// The `mode` query parameter.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ImageModeParam {
    /// Orient, crop, downscale, re-encode as needed; a compliant JPEG only loses its metadata.
    Normalize,
    /// JPEG only: metadata removed; re-encoded only when the orientation is not 1.
    Strip,
    /// JPEG only: bytes untouched.
    Passthrough,
}

/// The `crop` query parameter.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum CropParam {
    /// Centre-crop to a square.
    Center,
    /// Keep the aspect ratio.
    None,
}

/// The multipart form: exactly one file part named `photo`.
#[derive(Deserialize, ToSchema)]
pub struct PhotoForm {
    /// The image file (JPEG, PNG, WebP or GIF).
    #[schema(value_type = String, format = Binary)]
    pub photo: Vec<u8>,
}

/// The raw image bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct JpegBytes(pub Vec<u8>);

/// Declares the OpenAPI operations for one Graph path: PUT and PATCH, each with its own
/// `operationId` (`replace…` / `update…`), since generated clients key methods by it and keep
/// only one of two that share an id.
macro_rules! photo_operation {
    ($put_fn:ident = $put_id:literal, $patch_fn:ident = $patch_id:literal, $path:literal, $summary:literal, $params:tt) => {
        photo_operation!(@one put, $put_fn, $put_id, $path, $summary, $params);
        photo_operation!(@one patch, $patch_fn, $patch_id, $path, $summary, $params);
    };
    (@one $method:ident, $fn_name:ident, $op_id:literal, $path:literal, $summary:literal, [$( ($pname:literal, $pdesc:literal) ),*]) => {
        #[utoipa::path(
            $method,
            path = $path,
            operation_id = $op_id,
            tag = "photos",
            summary = $summary,
            description = "Sets the photo exactly as Graph's `PUT|PATCH …/photo/$value` does, on behalf of the signed-in user (or, for a daemon allowed by `APP_POLICY` with a role that grants `kind:write`, with the gateway's application token). \
PUT and PATCH behave the same; the method is forwarded as received. Segment names are case-insensitive and `%24value` equals `$value`. \
Send `multipart/form-data` with one file part named `photo`, or the raw image bytes as `image/*` or `application/octet-stream`. \
The photo may be a JPEG, PNG, WebP or GIF (first frame), recognised by its bytes (the declared type is never trusted), smaller than 4,194,304 bytes (configurable); \
anything else is refused with 415. A JPEG's structure is checked as it arrives (a corrupt or truncated one: 422 `image-unreadable`). \
The image stage then makes a clean profile photo of it (`mode=normalize`, the default): EXIF orientation applied, centre-cropped to a square (`crop=none` keeps the aspect ratio), \
the long edge at most 648 px (configurable; never upscaled), a baseline JPEG without metadata (EXIF, XMP, GPS, comments). An already compliant JPEG only loses its metadata, losslessly. \
`mode=strip` (JPEG only) removes the metadata and re-encodes only when the orientation is not 1; `mode=passthrough` (JPEG only; allowed only where the operator allows it) forwards the bytes as sent. \
`maxBytes` asks for an output of at most that many bytes (about 100 KB for accounts without an Exchange mailbox: Graph answers a larger photo with a misleading 404); \
the quality, then the size, is lowered until it fits, else 422 `image-not-fittable`. The receipt's `bytes` and `sha256` are those of what was sent to Graph; `input` and `output` say what was received and what was done.",
            params(
                $( ($pname = String, Path, description = $pdesc), )*
                ("mode" = Option<ImageModeParam>, Query, description = "What the image stage does: `normalize` (default, configurable), `strip` or `passthrough`. A mode the operator has not allowed (`IMAGE_ALLOWED_MODES`; by default `normalize,strip`) is refused with 403 `mode-not-allowed`"),
                ("crop" = Option<CropParam>, Query, description = "`center` (default, configurable): centre-crop to a square; `none`: keep the aspect ratio"),
                ("maxBytes" = Option<u64>, Query, minimum = 4096, description = "Byte budget of the output; at least `IMAGE_MIN_BYTES` (4096). A value above the configured budget (`IMAGE_MAX_BYTES`) is clamped to it: a caller never raises a configured limit"),
                ("X-Request-Id" = Option<String>, Header, description = "Request id to use (1–128 of `[A-Za-z0-9._:-]`); echoed and sent to Graph as `client-request-id`"),
                ("client-request-id" = Option<String>, Header, description = "Same as `X-Request-Id`, as Graph's SDKs send it")
            ),
            request_body(
                description = "The photo: a multipart form with one `photo` file part, or the raw image bytes (JPEG, PNG, WebP or GIF)",
                content(
                    (PhotoForm = "multipart/form-data"),
                    (JpegBytes = "image/jpeg"),
                    (JpegBytes = "image/png"),
                    (JpegBytes = "image/webp"),
                    (JpegBytes = "image/gif"),
                    (JpegBytes = "application/octet-stream")
                )
            ),
            responses(
                (status = 200, description = "Graph accepted the photo", body = UploadReceipt,
                    headers(("X-Request-Id" = String, description = "The request id"))),
                UploadErrors
            ),
            security(("bearer" = []))
        )]
        #[allow(dead_code)]
        fn $fn_name() {}
    };
}

photo_operation!(
    replace_my_photo = "replaceMyPhoto",
    update_my_photo = "updateMyPhoto",
    "/v1.0/me/photo/$value",
    "Set the signed-in user's photo",
    []
);
photo_operation!(
    replace_user_photo = "replaceUserPhoto",
    update_user_photo = "updateUserPhoto",
    "/v1.0/users/{user}/photo/$value",
    "Set a user's photo",
    [(
        "user",
        "Object id or userPrincipalName (guest UPNs with `#EXT#` percent-encoded)"
    )]
);
photo_operation!(
    replace_group_photo = "replaceGroupPhoto",
    update_group_photo = "updateGroupPhoto",
    "/v1.0/groups/{group}/photo/$value",
    "Set a group's photo",
    [("group", "Group object id")]
);
photo_operation!(
    replace_team_photo = "replaceTeamPhoto",
    update_team_photo = "updateTeamPhoto",
    "/v1.0/teams/{team}/photo/$value",
    "Set a team's photo",
    [("team", "Team id (its group's object id)")]
);
photo_operation!(
    replace_my_contact_photo = "replaceMyContactPhoto",
    update_my_contact_photo = "updateMyContactPhoto",
    "/v1.0/me/contacts/{contact}/photo/$value",
    "Set a photo of one of the signed-in user's contacts",
    [("contact", "Contact id")]
);
photo_operation!(
    replace_user_contact_photo = "replaceUserContactPhoto",
    update_user_contact_photo = "updateUserContactPhoto",
    "/v1.0/users/{user}/contacts/{contact}/photo/$value",
    "Set a photo of a user's contact",
    [
        ("user", "Object id or userPrincipalName"),
        ("contact", "Contact id")
    ]
);
photo_operation!(
    replace_my_folder_contact_photo = "replaceMyFolderContactPhoto",
    update_my_folder_contact_photo = "updateMyFolderContactPhoto",
    "/v1.0/me/contactfolders/{folder}/contacts/{contact}/photo/$value",
    "Set a photo of a contact in one of the signed-in user's contact folders",
    [("folder", "Contact folder id"), ("contact", "Contact id")]
);
photo_operation!(
    replace_user_folder_contact_photo = "replaceUserFolderContactPhoto",
    update_user_folder_contact_photo = "updateUserFolderContactPhoto",
    "/v1.0/users/{user}/contactfolders/{folder}/contacts/{contact}/photo/$value",
    "Set a photo of a contact in a user's contact folder",
    [
        ("user", "Object id or userPrincipalName"),
        ("folder", "Contact folder id"),
        ("contact", "Contact id")
    ]
);
