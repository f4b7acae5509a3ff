//! The read and delete handlers (GET of a photo, its metadata and its sizes; DELETE of a photo)
//! and their OpenAPI description.

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use tracing_actix_web::RootSpan;

use super::openapi_errors::UploadErrors;
use super::photo::credentials;
use crate::auth::Caller;
use crate::error::{ApiError, target_error};
use crate::graph::{PhotoTarget, PhotoView};
use crate::service::{PhotoDelete, PhotoRead, ReadAnswer};
use crate::state::AppState;
use crate::telemetry::{RequestId, RouteTemplate};

/// Authenticates, parses the path and labels the request (span, route template).
async fn begin(
    req: &HttpRequest,
    state: &AppState,
    span: &RootSpan,
) -> Result<(Caller, PhotoTarget, PhotoView, String), ApiError> {
    let caller = state.photos.authenticate(&credentials(req)).await?;
    span.record("client_app", caller.client_app_id.as_str());
    span.record("tenant_id", caller.tenant_id.as_str());
    let (target, view) =
        PhotoTarget::parse_view(req.path()).map_err(|e| target_error(e, req.path()))?;
    let template = target.view_template(view);
    span.record("http.route", template);
    span.record("target_kind", target.kind().as_str());
    req.extensions_mut().insert(RouteTemplate(template));
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.to_string())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Ok((caller, target, view, request_id))
}

fn traceparent(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
}

/// GET a photo (`…/photo/$value`, `…/photos/{size}/$value`), its metadata (`…/photo`) or its
/// sizes (`…/photos`).
pub async fn read_photo(
    req: HttpRequest,
    state: web::Data<AppState>,
    span: RootSpan,
) -> Result<HttpResponse, ApiError> {
    let (caller, target, view, request_id) = begin(&req, &state, &span).await?;
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let answer = state
        .photos
        .read(PhotoRead {
            caller: &caller,
            target: &target,
            view,
            if_none_match,
            traceparent: traceparent(&req),
            request_id: &request_id,
        })
        .await?;
    // Photos are private to whoever may read them: browsers may keep them, shared caches not.
    let cache_control = format!(
        "private, max-age={}",
        state.photos.read_cache().max_age().as_secs()
    );
    Ok(match answer {
        ReadAnswer::Photo {
            photo,
            not_modified: true,
        } => HttpResponse::NotModified()
            .insert_header((header::ETAG, photo.etag.as_str()))
            .insert_header((header::CACHE_CONTROL, cache_control))
            .finish(),
        ReadAnswer::Photo { photo, .. } => {
            span.record("photo_bytes", photo.bytes.len());
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, photo.content_type.as_str()))
                .insert_header((header::ETAG, photo.etag.as_str()))
                .insert_header((header::CACHE_CONTROL, cache_control))
                .body(photo.bytes.clone())
        }
        ReadAnswer::Metadata { body, content_type } => HttpResponse::Ok()
            .insert_header((
                header::CONTENT_TYPE,
                content_type.unwrap_or_else(|| "application/json".into()),
            ))
            .insert_header((header::CACHE_CONTROL, cache_control))
            .body(body),
    })
}

/// DELETE a photo (me, users, groups; Graph deletes no contact's or team's photo: 405).
pub async fn delete_photo(
    req: HttpRequest,
    state: web::Data<AppState>,
    span: RootSpan,
) -> Result<HttpResponse, ApiError> {
    let (caller, target, view, request_id) = begin(&req, &state, &span).await?;
    let allow = view.allow(target.kind());
    if view != PhotoView::Value || !allow.contains("DELETE") {
        return Err(ApiError::MethodNotAllowed(
            format!("DELETE is not supported here: use {allow}"),
            allow,
        ));
    }
    state
        .photos
        .delete(PhotoDelete {
            caller: &caller,
            target: &target,
            traceparent: traceparent(&req),
            request_id: &request_id,
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The photo's bytes, as Graph keeps them.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct PhotoBytes(pub Vec<u8>);

/// Graph's photo metadata (`profilePhoto`), passed through as Graph answers it.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({
    "@odata.mediaContentType": "image/jpeg",
    "@odata.mediaEtag": "\"BA09D118\"",
    "id": "648X648",
    "height": 648,
    "width": 648
}))]
#[allow(dead_code)]
pub struct ProfilePhoto {
    /// The photo's media type.
    #[schema(rename = "@odata.mediaContentType")]
    pub media_content_type: Option<String>,
    /// The photo's ETag (also the `ETag` of its bytes).
    #[schema(rename = "@odata.mediaEtag")]
    pub media_etag: Option<String>,
    /// `{width}X{height}`, e.g. `648X648`.
    pub id: String,
    /// Pixels.
    pub height: u32,
    /// Pixels.
    pub width: u32,
}

/// Graph's list of the sizes Exchange keeps of a photo (`GET …/photos`), passed through.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ProfilePhotos {
    /// One entry per size.
    pub value: Vec<ProfilePhoto>,
}

const READ_DESCRIPTION: &str = "Reads the photo as Graph's `GET …/photo/$value` does, on behalf of the signed-in user (or for a daemon allowed by `APP_POLICY`), with Graph's `Content-Type` and an `ETag` (Graph's, else the SHA-256 of the bytes). \
The answer is buffered (photos are under 4 MiB) and kept in the gateway's read cache (`READ_CACHE_MAX_BYTES`, `READ_CACHE_MAX_AGE_SECS`): a cached photo is served without asking Graph until it is `max-age` old, then revalidated with its ETag. \
Send `If-None-Match` with the ETag you hold to get 304. A target without a photo: 404 `photo-not-found`; an unknown user or group: Graph's 404 as `graph-rejected`. \
Reading another user's, a group's, a team's or another user's contact's photo needs the calling app to be granted it (`CALLER_POLICY`, `kind:read`); a daemon, a role that `APP_POLICY` makes grant `kind:read`.";

/// Declares the OpenAPI GET of a photo's bytes on one path.
macro_rules! read_operation {
    ($fn_name:ident = $op_id:literal, $path:literal, $summary:literal, [$( ($pname:literal, $pdesc:literal) ),*]) => {
        #[utoipa::path(
            get,
            path = $path,
            operation_id = $op_id,
            tag = "photos",
            summary = $summary,
            description = READ_DESCRIPTION,
            params(
                $( ($pname = String, Path, description = $pdesc), )*
                ("If-None-Match" = Option<String>, Header, description = "An ETag of the photo you hold: 304 when it is current"),
                ("X-Request-Id" = Option<String>, Header, description = "Request id to use (1–128 of `[A-Za-z0-9._:-]`); echoed and sent to Graph as `client-request-id`")
            ),
            responses(
                (status = 200, description = "The photo", content(
                    (PhotoBytes = "image/jpeg"),
                    (PhotoBytes = "image/png"),
                    (PhotoBytes = "image/gif"),
                    (PhotoBytes = "application/octet-stream")),
                    headers(
                        ("ETag" = String, description = "Graph's ETag, else the quoted SHA-256 of the bytes"),
                        ("Cache-Control" = String, description = "`private, max-age=<READ_CACHE_MAX_AGE_SECS>`"),
                        ("X-Request-Id" = String, description = "The request id"))),
                (status = 304, description = "The photo named by `If-None-Match` is current",
                    headers(("ETag" = String, description = "The photo's ETag"))),
                UploadErrors
            ),
            security(("bearer" = []))
        )]
        #[allow(dead_code)]
        fn $fn_name() {}
    };
}

/// Declares the OpenAPI GET of a JSON view (metadata, sizes) on one path.
macro_rules! metadata_operation {
    ($fn_name:ident = $op_id:literal, $body:ty, $path:literal, $summary:literal, $desc:literal, [$( ($pname:literal, $pdesc:literal) ),*]) => {
        #[utoipa::path(
            get,
            path = $path,
            operation_id = $op_id,
            tag = "photos",
            summary = $summary,
            description = $desc,
            params(
                $( ($pname = String, Path, description = $pdesc), )*
                ("X-Request-Id" = Option<String>, Header, description = "Request id to use (1–128 of `[A-Za-z0-9._:-]`); echoed and sent to Graph as `client-request-id`")
            ),
            responses(
                (status = 200, description = "Graph's answer, passed through", body = $body,
                    headers(("X-Request-Id" = String, description = "The request id"))),
                UploadErrors
            ),
            security(("bearer" = []))
        )]
        #[allow(dead_code)]
        fn $fn_name() {}
    };
}

/// Declares the OpenAPI DELETE of a photo on one path.
macro_rules! delete_operation {
    ($fn_name:ident = $op_id:literal, $path:literal, $summary:literal, [$( ($pname:literal, $pdesc:literal) ),*]) => {
        #[utoipa::path(
            delete,
            path = $path,
            operation_id = $op_id,
            tag = "photos",
            summary = $summary,
            description = "Deletes the photo as Graph's `DELETE …/photo/$value` does, on behalf of the signed-in user (another user's photo also needs the user to hold an admin role: Graph's 403 is passed on as `graph-rejected`). \
Deleting another user's or a group's photo needs the calling app to be granted it (`CALLER_POLICY`, `kind:delete`); a daemon, a role that `APP_POLICY` makes grant `kind:delete`. The gateway's read cache forgets the photo. Graph deletes no contact's or team's photo: 405.",
            params(
                $( ($pname = String, Path, description = $pdesc), )*
                ("X-Request-Id" = Option<String>, Header, description = "Request id to use (1–128 of `[A-Za-z0-9._:-]`); echoed and sent to Graph as `client-request-id`")
            ),
            responses(
                (status = 204, description = "Graph deleted the photo",
                    headers(("X-Request-Id" = String, description = "The request id"))),
                UploadErrors
            ),
            security(("bearer" = []))
        )]
        #[allow(dead_code)]
        fn $fn_name() {}
    };
}

read_operation!(
    get_my_photo = "getMyPhoto",
    "/v1.0/me/photo/$value",
    "Get the signed-in user's photo",
    []
);
read_operation!(
    get_user_photo = "getUserPhoto",
    "/v1.0/users/{user}/photo/$value",
    "Get a user's photo",
    [("user", "Object id or userPrincipalName")]
);
read_operation!(
    get_group_photo = "getGroupPhoto",
    "/v1.0/groups/{group}/photo/$value",
    "Get a group's photo",
    [("group", "Group object id")]
);
read_operation!(
    get_team_photo = "getTeamPhoto",
    "/v1.0/teams/{team}/photo/$value",
    "Get a team's photo",
    [("team", "Team id (its group's object id)")]
);
read_operation!(
    get_my_contact_photo = "getMyContactPhoto",
    "/v1.0/me/contacts/{contact}/photo/$value",
    "Get a photo of one of the signed-in user's contacts",
    [("contact", "Contact id")]
);
read_operation!(
    get_user_contact_photo = "getUserContactPhoto",
    "/v1.0/users/{user}/contacts/{contact}/photo/$value",
    "Get a photo of a user's contact",
    [
        ("user", "Object id or userPrincipalName"),
        ("contact", "Contact id")
    ]
);
read_operation!(
    get_my_folder_contact_photo = "getMyFolderContactPhoto",
    "/v1.0/me/contactfolders/{folder}/contacts/{contact}/photo/$value",
    "Get a photo of a contact in one of the signed-in user's contact folders",
    [("folder", "Contact folder id"), ("contact", "Contact id")]
);
read_operation!(
    get_user_folder_contact_photo = "getUserFolderContactPhoto",
    "/v1.0/users/{user}/contactfolders/{folder}/contacts/{contact}/photo/$value",
    "Get a photo of a contact in a user's contact folder",
    [
        ("user", "Object id or userPrincipalName"),
        ("folder", "Contact folder id"),
        ("contact", "Contact id")
    ]
);
read_operation!(
    get_my_photo_by_size = "getMyPhotoBySize",
    "/v1.0/me/photos/{size}/$value",
    "Get one of Exchange's sizes of the signed-in user's photo",
    [(
        "size",
        "`48x48`, `64x64`, `96x96`, `120x120`, `240x240`, `360x360`, `432x432`, `504x504` or `648x648` (another: 400 `invalid-parameter`)"
    )]
);
read_operation!(
    get_user_photo_by_size = "getUserPhotoBySize",
    "/v1.0/users/{user}/photos/{size}/$value",
    "Get one of Exchange's sizes of a user's photo",
    [
        ("user", "Object id or userPrincipalName"),
        (
            "size",
            "`48x48` … `648x648` (Exchange's sizes; another: 400 `invalid-parameter`)"
        )
    ]
);
read_operation!(
    get_group_photo_by_size = "getGroupPhotoBySize",
    "/v1.0/groups/{group}/photos/{size}/$value",
    "Get one of Exchange's sizes of a group's photo",
    [
        ("group", "Group object id"),
        (
            "size",
            "`48x48` … `648x648` (Exchange's sizes; another: 400 `invalid-parameter`)"
        )
    ]
);

metadata_operation!(
    get_my_photo_metadata = "getMyPhotoMetadata",
    ProfilePhoto,
    "/v1.0/me/photo",
    "Get the signed-in user's photo metadata",
    "Graph's `GET /me/photo`, passed through (never cached).",
    []
);
metadata_operation!(
    get_user_photo_metadata = "getUserPhotoMetadata",
    ProfilePhoto,
    "/v1.0/users/{user}/photo",
    "Get a user's photo metadata",
    "Graph's `GET /users/{id}/photo`, passed through (never cached).",
    [("user", "Object id or userPrincipalName")]
);
metadata_operation!(
    get_group_photo_metadata = "getGroupPhotoMetadata",
    ProfilePhoto,
    "/v1.0/groups/{group}/photo",
    "Get a group's photo metadata",
    "Graph's `GET /groups/{id}/photo`, passed through (never cached).",
    [("group", "Group object id")]
);
metadata_operation!(
    get_team_photo_metadata = "getTeamPhotoMetadata",
    ProfilePhoto,
    "/v1.0/teams/{team}/photo",
    "Get a team's photo metadata",
    "Graph's `GET /teams/{id}/photo`, passed through (never cached).",
    [("team", "Team id")]
);
metadata_operation!(
    get_my_contact_photo_metadata = "getMyContactPhotoMetadata",
    ProfilePhoto,
    "/v1.0/me/contacts/{contact}/photo",
    "Get the photo metadata of one of the signed-in user's contacts",
    "Graph's `GET /me/contacts/{id}/photo`, passed through (never cached).",
    [("contact", "Contact id")]
);
metadata_operation!(
    get_user_contact_photo_metadata = "getUserContactPhotoMetadata",
    ProfilePhoto,
    "/v1.0/users/{user}/contacts/{contact}/photo",
    "Get the photo metadata of a user's contact",
    "Graph's `GET /users/{id}/contacts/{id}/photo`, passed through (never cached).",
    [
        ("user", "Object id or userPrincipalName"),
        ("contact", "Contact id")
    ]
);
metadata_operation!(
    get_my_photo_sizes = "getMyPhotoSizes",
    ProfilePhotos,
    "/v1.0/me/photos",
    "List the sizes of the signed-in user's photo",
    "Graph's `GET /me/photos` (the sizes Exchange keeps), passed through (never cached).",
    []
);
metadata_operation!(
    get_user_photo_sizes = "getUserPhotoSizes",
    ProfilePhotos,
    "/v1.0/users/{user}/photos",
    "List the sizes of a user's photo",
    "Graph's `GET /users/{id}/photos`, passed through (never cached).",
    [("user", "Object id or userPrincipalName")]
);
metadata_operation!(
    get_group_photo_sizes = "getGroupPhotoSizes",
    ProfilePhotos,
    "/v1.0/groups/{group}/photos",
    "List the sizes of a group's photo",
    "Graph's `GET /groups/{id}/photos`, passed through (never cached).",
    [("group", "Group object id")]
);

delete_operation!(
    delete_my_photo = "deleteMyPhoto",
    "/v1.0/me/photo/$value",
    "Delete the signed-in user's photo",
    []
);
delete_operation!(
    delete_user_photo = "deleteUserPhoto",
    "/v1.0/users/{user}/photo/$value",
    "Delete a user's photo",
    [("user", "Object id or userPrincipalName")]
);
delete_operation!(
    delete_group_photo = "deleteGroupPhoto",
    "/v1.0/groups/{group}/photo/$value",
    "Delete a group's photo",
    [("group", "Group object id")]
);
