//! Where values come from: the environment, then an optional `KEY=VALUE` file for variables the
//! environment does not set; and the typed readers that turn a value into a setting or an error
//! naming its variable.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use url::Url;

use super::ConfigError;
use super::defaults::{MAX_SECS, PREFIX};

/// Raw variables, with lookups that remember the full name for errors.
pub(super) struct Vars(HashMap<String, String>);

impl Vars {
    /// Collects the pairs; a `PHOTO_GATEWAY_CONFIG_FILE` among them supplies values for
    /// variables not set directly.
    pub(super) fn collect(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Vars, ConfigError> {
        let mut map: HashMap<String, String> = vars.into_iter().collect();
        let file_var = format!("{PREFIX}CONFIG_FILE");
        if let Some(path) = map.get(&file_var).cloned().filter(|p| !p.trim().is_empty()) {
            let text = std::fs::read_to_string(path.trim())
                .map_err(|e| err(&file_var, format!("cannot read {path:?}: {e}")))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some((k, v)) = line.split_once('=') else {
                    return Err(err(&file_var, format!("line {} is not KEY=VALUE", n + 1)));
                };
                map.entry(k.trim().to_owned())
                    .or_insert_with(|| v.trim().trim_matches('"').to_owned());
            }
        }
        Ok(Vars(map))
    }

    /// A variable by its full name, trimmed; unset when empty.
    pub(super) fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// `PHOTO_GATEWAY_{key}`.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.raw(&format!("{PREFIX}{key}"))
    }

    /// The prefixed variable, else the Azure Workload Identity one; with the name that was used.
    pub(super) fn get_or_azure(&self, key: &str, azure: &str) -> Option<(String, &str)> {
        let name = format!("{PREFIX}{key}");
        if let Some(v) = self.raw(&name) {
            return Some((name, v));
        }
        self.raw(azure).map(|v| (azure.to_owned(), v))
    }

    /// Parses `key`, or `default` when unset.
    pub(super) fn parse<T: std::str::FromStr>(
        &self,
        key: &str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| err(key, format!("cannot parse {v:?}: {e}"))),
        }
    }

    /// A non-negative (possibly fractional) number of seconds, at most [`MAX_SECS`]: every
    /// duration is added to "now" somewhere, and an absurd one would overflow there.
    pub(super) fn secs(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        let v: f64 = self.parse(key, default as f64)?;
        if !v.is_finite() || v < 0.0 {
            return Err(err(key, "must be a non-negative number of seconds"));
        }
        if v > MAX_SECS as f64 {
            return Err(err(key, format!("at most {MAX_SECS} seconds (7 days)")));
        }
        Ok(Duration::from_secs_f64(v))
    }

    /// A list separated by commas or spaces.
    pub(super) fn list(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).map(|v| {
            v.split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }
}

/// An error naming the variable: `key` is prefixed unless it is already a full name.
pub(super) fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var: if key.starts_with(PREFIX) || key.starts_with("AZURE_") {
            key.to_owned()
        } else {
            format!("{PREFIX}{key}")
        },
        message: message.into(),
    }
}

/// An upstream URL: https, or http to a loopback address.
pub(super) fn upstream_url(var: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim_end_matches('/'))
        .map_err(|e| err(var, format!("not a URL ({value:?}): {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(err(
            var,
            "plain http is only allowed for loopback addresses; use https",
        )),
        s => Err(err(var, format!("unsupported scheme {s:?}"))),
    }
}
