//! How the failures of the lower rooms become caller-facing errors: the token exchange
//! (`OboError`), the path parser (`TargetError`) and the Graph client (`GraphFailure`).

use super::{ApiError, retry_after_secs};
use crate::graph::{GraphErrorInfo, GraphFailure, TargetError};
use crate::image::{ImageError, ImageLimits};
use crate::token::OboError;
#[cfg(test)]
use actix_web::ResponseError as _;

/// The types the image stage reads, named in every 415.
pub const SUPPORTED_IMAGE_TYPES: &str = "image/jpeg, image/png, image/webp, image/gif";

/// A refusal of the image stage as the caller sees it. The decoder's reason for an unreadable
/// image is logged here (it may quote the image's structure) and never sent to the caller.
pub fn image_error(e: ImageError, limits: &ImageLimits, mode: &str) -> ApiError {
    match e {
        ImageError::Unsupported { detected } => {
            let seen = detected.unwrap_or("an unrecognised type");
            if matches!(mode, "strip" | "passthrough") {
                ApiError::UnsupportedMediaType(format!(
                    "mode {mode} accepts only JPEG (image/jpeg); the bytes are {seen}. Send a JPEG, or use mode normalize, which reads {SUPPORTED_IMAGE_TYPES}"
                ))
            } else {
                ApiError::UnsupportedMediaType(format!(
                    "the bytes are {seen}; supported types: {SUPPORTED_IMAGE_TYPES}"
                ))
            }
        }
        ImageError::TooLarge { width, height } => ApiError::ImageTooLarge {
            width,
            height,
            max_pixels: limits.max_pixels,
            max_edge: limits.max_input_edge,
        },
        ImageError::Unreadable(reason) => {
            tracing::info!(reason = %reason, "the image stage could not decode the photo");
            ApiError::ImageUnreadable(
                "the image cannot be decoded: it is corrupt, truncated, or a variant the gateway does not read".into(),
            )
        }
        ImageError::NotFittable { budget, smallest } => {
            ApiError::ImageNotFittable { budget, smallest }
        }
        ImageError::Busy => {
            ApiError::Overloaded("every image worker is busy: retry in a moment".into())
        }
    }
}

impl From<&OboError> for ApiError {
    /// Entra's free text never reaches the caller (the exchange logged it): only its AADSTS number.
    fn from(e: &OboError) -> ApiError {
        match e {
            OboError::ConsentRequired { scope, entra } => ApiError::ConsentRequired {
                scope: scope.clone(),
                aadsts: entra.aadsts,
            },
            OboError::ClaimsChallenge { claims, entra } => ApiError::ClaimsChallenge {
                claims: claims.clone(),
                aadsts: entra.aadsts,
            },
            OboError::AssertionRejected(entra) => ApiError::AssertionRejected {
                aadsts: entra.aadsts,
            },
            OboError::CredentialRejected(entra) => ApiError::GatewayCredentialRejected {
                aadsts: entra.aadsts,
            },
            OboError::CredentialUnusable(_) => ApiError::GatewayCredentialRejected { aadsts: None },
            OboError::Refused(entra) => ApiError::IdentityRejected {
                aadsts: entra.aadsts,
            },
            OboError::Unavailable {
                description,
                retry_after,
            } => ApiError::IdentityUnavailable {
                detail: format!("Entra ID could not issue a Graph token: {description}"),
                retry_after: retry_after_secs(*retry_after),
            },
        }
    }
}

impl From<OboError> for ApiError {
    fn from(e: OboError) -> ApiError {
        ApiError::from(&e)
    }
}

/// A path that is not a photo target: 404 for another path, 400 for a bad id in a photo path.
pub fn target_error(e: TargetError, path: &str) -> ApiError {
    match e {
        TargetError::NoSuchRoute => ApiError::NotFound(format!(
            "{path} is not one of Graph's photo paths (see /docs)"
        )),
        TargetError::InvalidId(why) => ApiError::InvalidTarget(why),
        TargetError::InvalidSize(why) => ApiError::InvalidParameter(why),
    }
}

/// What Graph called itself in a failure: its error code, else the status.
fn what(info: &GraphErrorInfo) -> String {
    info.code
        .clone()
        .unwrap_or_else(|| format!("HTTP {}", info.status))
}

impl From<GraphFailure> for ApiError {
    fn from(f: GraphFailure) -> ApiError {
        match f {
            GraphFailure::Unauthorized { info, .. } => ApiError::GraphRejectedToken {
                detail: "Microsoft Graph refused the gateway's token even after a fresh exchange"
                    .into(),
                graph: Box::new(info),
            },
            GraphFailure::Rejected(info) => ApiError::GraphRejected {
                detail: match &info.message {
                    Some(m) => format!("Microsoft Graph refused the photo ({}): {m}", what(&info)),
                    None => format!("Microsoft Graph refused the photo ({})", what(&info)),
                },
                graph: Box::new(info),
            },
            GraphFailure::Unavailable { retry_after, info } => ApiError::GraphUnavailable {
                detail: format!(
                    "Microsoft Graph is throttling or unavailable ({}); retry later",
                    what(&info)
                ),
                // Graph said nothing: a few seconds is what its own guidance suggests.
                retry_after: retry_after.map(retry_after_secs).unwrap_or(5),
                graph: Box::new(info),
            },
            GraphFailure::ServerError(info) => ApiError::GraphError {
                detail: format!("Microsoft Graph failed ({})", what(&info)),
                graph: Box::new(info),
            },
            GraphFailure::ConnectFailed => ApiError::GraphUnreachable(
                "Microsoft Graph could not be reached (connection refused or failed)".into(),
            ),
            GraphFailure::Reset => ApiError::GraphUnreachable(
                "the connection to Microsoft Graph was reset before it answered".into(),
            ),
            GraphFailure::AttemptTimeout => {
                ApiError::GraphTimeout("Microsoft Graph did not answer within the deadline".into())
            }
            GraphFailure::DeadlinePassed => ApiError::GraphTimeout(
                "Microsoft Graph did not accept the photo within the gateway's deadline".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn image_refusals_map_to_their_rows_and_the_decoders_reason_stays_out() {
        let limits = ImageLimits {
            max_pixels: 40_000_000,
            max_input_edge: 12_000,
            workers: 1,
            queue_timeout: Duration::from_secs(2),
        };
        let map = |e, mode| image_error(e, &limits, mode);
        let e = map(
            ImageError::Unsupported {
                detected: Some("image/bmp"),
            },
            "normalize",
        );
        assert_eq!(e.code(), "unsupported-media-type");
        assert!(
            e.to_string().contains("image/bmp") && e.to_string().contains(SUPPORTED_IMAGE_TYPES)
        );
        let e = map(
            ImageError::Unsupported {
                detected: Some("image/png"),
            },
            "strip",
        );
        assert!(
            e.to_string().contains("mode strip accepts only JPEG"),
            "{e}"
        );
        let e = map(
            ImageError::TooLarge {
                width: 100_000,
                height: 100_000,
            },
            "normalize",
        );
        assert_eq!(
            (e.code(), e.status_code().as_u16()),
            ("image-too-large", 413)
        );
        assert!(e.to_string().contains("100000×100000"), "{e}");
        let e = map(
            ImageError::Unreadable("IDAT at offset 33: zlib error".into()),
            "normalize",
        );
        assert_eq!(
            (e.code(), e.status_code().as_u16()),
            ("image-unreadable", 422)
        );
        assert!(!e.to_string().contains("IDAT"), "{e}");
        let e = map(
            ImageError::NotFittable {
                budget: 4096,
                smallest: 9000,
            },
            "normalize",
        );
        assert_eq!(
            (e.code(), e.status_code().as_u16()),
            ("image-not-fittable", 422)
        );
        let e = map(ImageError::Busy, "normalize");
        assert_eq!((e.code(), e.status_code().as_u16()), ("overloaded", 503));
        let resp = actix_web::ResponseError::error_response(&e);
        assert!(resp.headers().contains_key("retry-after"));
    }
}
