//! Team photos: `GET`, `PUT` and `PATCH /{version}/teams/{id}/photo/$value` and `GET …/photo`, with
//! Graph's permissions (TeamSettings.ReadWrite.All to write, Team.ReadBasic.All to read; delegated
//! and application alike). A team's photo is its group's: both paths read and write one photo.

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde_json::json;

use super::error::GraphError;
use super::recording::Trace;
use super::{GraphEmulator, GraphState};
use crate::teams::team;
use crate::util::{Body, decoded_segments, empty, json, read, write};

/// The route template counted and recorded for team photo requests.
pub(super) const TEAM_PHOTO_TEMPLATE: &str = "/teams/{id}/photo/$value";
const TEAM_METADATA_TEMPLATE: &str = "/teams/{id}/photo";

/// Permissions that change a team's photo.
const WRITE: [&str; 3] = [
    "TeamSettings.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
];
/// Permissions that read it (the write ones too).
const READ: [&str; 4] = [
    "Team.ReadBasic.All",
    "TeamSettings.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
];

/// A `/{version}/teams/{id}/photo[/$value]` path: the team id and whether it ends in `$value`.
pub(super) fn team_path(path: &str) -> Option<(String, bool)> {
    let segs = decoded_segments(path.strip_prefix('/')?.trim_end_matches('/'));
    let is = |s: &String, name: &str| s.eq_ignore_ascii_case(name);
    match segs.as_slice() {
        [v, teams, id, photo, rest @ ..]
            if (is(v, "v1.0") || is(v, "beta"))
                && is(teams, "teams")
                && !id.is_empty()
                && is(photo, "photo") =>
        {
            match rest {
                [] => Some((id.clone(), false)),
                [value] if is(value, "$value") => Some((id.clone(), true)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The template of a team photo path, for counting.
pub(super) fn team_template(path: &str) -> Option<String> {
    team_path(path).map(|(_, value)| {
        if value {
            TEAM_PHOTO_TEMPLATE
        } else {
            TEAM_METADATA_TEMPLATE
        }
        .to_string()
    })
}

impl GraphState {
    /// Serves a team photo request.
    pub(super) async fn team_request(
        &self,
        parts: &Parts,
        body: &mut Option<Incoming>,
        (id, value): (String, bool),
        trace: &mut Trace,
    ) -> Result<Response<Body>, GraphError> {
        trace.template = team_template(parts.uri.path());
        let method = &parts.method;
        let writes = matches!(*method, Method::PUT | Method::PATCH);
        // Graph has no DELETE of a team photo.
        if !(*method == Method::GET || (writes && value)) {
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
        let mut allowed: Vec<&str> = WRITE.to_vec();
        if !writes {
            allowed.extend(READ);
        }
        if !caller.has_any(&allowed) {
            return Err(GraphError::insufficient_privileges());
        }
        let team = team(&id).ok_or_else(|| {
            GraphError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("No team found with Group Id {id}"),
            )
        })?;
        let key = format!("g:{}", team.id);
        trace.target = Some(format!("/teams/{}/photo/$value", team.id));
        match (method.clone(), value) {
            (Method::GET, true) => {
                let photo = read(&self.photos).get(&key).cloned().ok_or_else(|| {
                    GraphError::new(
                        StatusCode::NOT_FOUND,
                        "ImageNotFound",
                        "The photo wasn't found.",
                    )
                })?;
                Ok(photo.answer(parts, None, photo.bytes.clone(), &photo.content_type))
            }
            (Method::GET, false) => {
                let context = format!(
                    "{}/v1.0/$metadata#teams('{}')/photo/$entity",
                    self.url, team.id
                );
                let photo = read(&self.photos).get(&key).cloned();
                Ok(json(
                    StatusCode::OK,
                    &match photo {
                        Some(p) => {
                            let (w, h) = (p.width.unwrap_or(0), p.height.unwrap_or(0));
                            json!({
                                "@odata.context": context,
                                "@odata.mediaContentType": p.content_type,
                                "@odata.mediaEtag": p.etag(None),
                                "id": format!("{w}X{h}"),
                                "height": h,
                                "width": w,
                            })
                        }
                        None => json!({
                            "@odata.context": context,
                            "@odata.mediaContentType": "image/gif",
                            "id": "1X1",
                            "height": 1,
                            "width": 1,
                        }),
                    },
                ))
            }
            _ => {
                let photo = self.upload(parts, body, trace).await?;
                write(&self.photos).insert(key, photo);
                // Teams answers a photo update with 204, not Graph's usual 200.
                Ok(empty(StatusCode::NO_CONTENT))
            }
        }
    }
}

impl GraphEmulator {
    /// The stored photo bytes of a team (its group's photo).
    pub fn photo_of_team(&self, team_id: &str) -> Option<bytes::Bytes> {
        let t = team(team_id)?;
        read(&self.state.photos)
            .get(&format!("g:{}", t.id))
            .map(|p| p.bytes.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_team_photo_paths_only() {
        assert_eq!(
            team_path("/v1.0/TEAMS/abc/Photo/%24value"),
            Some(("abc".into(), true))
        );
        assert_eq!(
            team_path("/beta/teams/abc/photo"),
            Some(("abc".into(), false))
        );
        assert_eq!(team_path("/v1.0/teams//photo/$value"), None);
        assert_eq!(team_path("/v1.0/teams/abc/photos/48/$value"), None);
        assert_eq!(team_path("/v1.0/teams/abc/photo/$value/x"), None);
        assert_eq!(team_path("/v2.0/teams/abc/photo"), None);
    }
}
