//! What one request may ask of the image stage: the query parameters `mode`, `crop` and
//! `maxBytes`, parsed (`ImageRequest::parse`, by the handler), then resolved against what the
//! operator configured (`ImagePolicy::resolve`, by the service, before a byte of the body is
//! read). A caller never raises a configured limit: a mode outside the allowed list is refused
//! (403 `mode-not-allowed`) and a `maxBytes` above the configured budget is clamped to it (the
//! output is then still at most what the caller asked for).

use crate::error::ApiError;
use crate::image::{Crop, ImageOptions, Mode};

/// The names a request and the configuration use for the modes.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Normalize => "normalize",
        Mode::Strip => "strip",
        Mode::Passthrough => "passthrough",
    }
}

fn parse_mode(value: &str) -> Option<Mode> {
    [Mode::Normalize, Mode::Strip, Mode::Passthrough]
        .into_iter()
        .find(|m| mode_name(*m).eq_ignore_ascii_case(value))
}

fn parse_crop(value: &str) -> Option<Crop> {
    match value.to_ascii_lowercase().as_str() {
        "center" | "centre" => Some(Crop::Center),
        "none" => Some(Crop::None),
        _ => None,
    }
}

/// The query parameters of an upload, as given (nothing resolved yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageRequest {
    /// `mode`.
    pub mode: Option<Mode>,
    /// `crop`.
    pub crop: Option<Crop>,
    /// `maxBytes`.
    pub max_bytes: Option<usize>,
}

/// Longest value of a parameter that is looked at (the longest valid one is a number of bytes).
const MAX_VALUE_LEN: usize = 20;

impl ImageRequest {
    /// Parses the query string. Other parameters are ignored here (a token in the query is the
    /// credential check's to refuse); a bad or repeated one of ours is 400 `invalid-parameter`.
    pub fn parse(query: &str) -> Result<ImageRequest, ApiError> {
        let mut req = ImageRequest::default();
        let mut seen = [false; 3];
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "mode" => 0,
                "crop" => 1,
                "maxBytes" => 2,
                _ => continue,
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(ApiError::InvalidParameter(format!(
                    "the query parameter {key} is given more than once"
                )));
            }
            let value = value.trim();
            let shown: String = value.chars().take(MAX_VALUE_LEN).collect();
            let bad = |expected: &str| {
                ApiError::InvalidParameter(format!(
                    "the query parameter {key}={shown:?} is not accepted: expected {expected}"
                ))
            };
            match slot {
                0 => {
                    req.mode = Some(
                        parse_mode(value).ok_or_else(|| bad("normalize, strip or passthrough"))?,
                    )
                }
                1 => req.crop = Some(parse_crop(value).ok_or_else(|| bad("center or none"))?),
                _ => {
                    if value.is_empty()
                        || value.len() > MAX_VALUE_LEN
                        || !value.bytes().all(|b| b.is_ascii_digit())
                    {
                        return Err(bad("a number of bytes"));
                    }
                    req.max_bytes = Some(value.parse().map_err(|_| bad("a number of bytes"))?);
                }
            }
        }
        Ok(req)
    }
}

/// What the operator configured: the defaults, which modes callers may name, and the bounds of
/// `maxBytes`.
#[derive(Debug, Clone)]
pub struct ImagePolicy {
    /// The options of a request that asks nothing.
    pub defaults: ImageOptions,
    /// Modes a request may name.
    pub allowed_modes: Vec<Mode>,
    /// Smallest `maxBytes` a request may name.
    pub min_bytes: usize,
}

impl ImagePolicy {
    /// The options for one request, or why it is refused.
    pub fn resolve(&self, req: &ImageRequest) -> Result<ImageOptions, ApiError> {
        let mut options = self.defaults;
        if let Some(mode) = req.mode {
            if !self.allowed_modes.contains(&mode) {
                let allowed: Vec<&str> = self.allowed_modes.iter().map(|m| mode_name(*m)).collect();
                return Err(ApiError::ModeNotAllowed(format!(
                    "mode {} is not allowed here; allowed: {}",
                    mode_name(mode),
                    allowed.join(", ")
                )));
            }
            options.mode = mode;
        }
        if let Some(crop) = req.crop {
            options.crop = crop;
        }
        if let Some(asked) = req.max_bytes {
            if asked < self.min_bytes {
                return Err(ApiError::InvalidParameter(format!(
                    "maxBytes={asked} is under the smallest budget, {} bytes",
                    self.min_bytes
                )));
            }
            options.max_bytes = Some(match self.defaults.max_bytes {
                Some(configured) => asked.min(configured),
                None => asked,
            });
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_bytes: Option<usize>) -> ImagePolicy {
        ImagePolicy {
            defaults: ImageOptions {
                mode: Mode::Normalize,
                crop: Crop::Center,
                max_edge: 648,
                quality: 85,
                background: [255; 3],
                max_bytes,
            },
            allowed_modes: vec![Mode::Normalize, Mode::Strip],
            min_bytes: 4096,
        }
    }

    #[test]
    fn parameters_are_parsed_and_bad_ones_are_refused_with_their_own_code() {
        assert_eq!(ImageRequest::parse("").unwrap(), ImageRequest::default());
        let r = ImageRequest::parse("mode=Strip&crop=none&maxBytes=100000&other=1").unwrap();
        assert_eq!(r.mode, Some(Mode::Strip));
        assert_eq!(r.crop, Some(Crop::None));
        assert_eq!(r.max_bytes, Some(100_000));
        for q in [
            "mode=sideways",
            "crop=left",
            "maxBytes=-1",
            "maxBytes=1e5",
            "maxBytes=",
            "maxBytes=99999999999999999999999",
            "mode=strip&mode=normalize",
        ] {
            let e = ImageRequest::parse(q).unwrap_err();
            assert_eq!(e.code(), "invalid-parameter", "{q}");
        }
    }

    #[test]
    fn a_caller_never_raises_a_configured_limit() {
        let p = policy(Some(100_000));
        let o = p.resolve(&ImageRequest::default()).unwrap();
        assert_eq!((o.mode, o.max_bytes), (Mode::Normalize, Some(100_000)));
        let asks = |q| p.resolve(&ImageRequest::parse(q).unwrap());
        assert_eq!(asks("maxBytes=500000").unwrap().max_bytes, Some(100_000));
        assert_eq!(asks("maxBytes=50000").unwrap().max_bytes, Some(50_000));
        assert_eq!(
            asks("maxBytes=100").unwrap_err().code(),
            "invalid-parameter"
        );
        let e = asks("mode=passthrough").unwrap_err();
        assert_eq!(e.code(), "mode-not-allowed");
        assert!(e.to_string().contains("normalize, strip"), "{e}");
        assert_eq!(asks("mode=strip").unwrap().mode, Mode::Strip);
        assert_eq!(asks("crop=none").unwrap().crop, Crop::None);
        // No budget configured: the caller's own applies.
        let p = policy(None);
        let o = p
            .resolve(&ImageRequest::parse("maxBytes=123456").unwrap())
            .unwrap();
        assert_eq!(o.max_bytes, Some(123_456));
    }
}
