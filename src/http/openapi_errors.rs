//! The error responses of the OpenAPI document, generated from the errors table so the document
//! can never disagree with what the gateway answers.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, HeaderBuilder, Ref, RefOr, Response, ResponseBuilder};

use crate::error::table::{GRAPH_REJECTED_STATUSES, ROWS};
use crate::error::{Challenge, PROBLEM_JSON, RetryAfter, RowStatus};

/// Every failure a photo operation can answer with, one response per status.
pub struct UploadErrors;

/// What the rows sharing one status need in their response.
#[derive(Default)]
struct StatusResponse {
    lines: Vec<String>,
    challenge: bool,
    retry: bool,
    allow: Option<&'static str>,
}

impl IntoResponses for UploadErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut by_status: BTreeMap<u16, StatusResponse> = BTreeMap::new();
        for row in ROWS {
            let statuses: Vec<u16> = match row.status {
                RowStatus::Fixed(s) => vec![s.as_u16()],
                RowStatus::AsGraph => GRAPH_REJECTED_STATUSES.to_vec(),
            };
            let line = match row.status {
                RowStatus::Fixed(_) => format!("`{}`: {}", row.code, row.situation),
                RowStatus::AsGraph => {
                    format!("`{}` (Graph's own status): {}", row.code, row.situation)
                }
            };
            for status in statuses {
                let entry = by_status.entry(status).or_default();
                entry.lines.push(line.clone());
                entry.challenge |= row.challenge != Challenge::None;
                entry.retry |= row.retry_after != RetryAfter::None;
                entry.allow = entry.allow.or(row.allow);
            }
        }
        by_status
            .into_iter()
            .map(
                |(
                    status,
                    StatusResponse {
                        lines,
                        challenge,
                        retry,
                        allow,
                    },
                )| {
                    let mut response = ResponseBuilder::new()
                        .description(lines.join("; "))
                        .content(
                            PROBLEM_JSON,
                            Content::new(Some(Ref::from_schema_name("Problem"))),
                        );
                    let string = || ObjectBuilder::new().schema_type(Type::String).build();
                    if challenge {
                        response = response.header(
                            "WWW-Authenticate",
                            HeaderBuilder::new()
                                .schema(Some(string()))
                                .description(Some("RFC 6750 Bearer challenge"))
                                .build(),
                        );
                    }
                    if retry {
                        response = response.header(
                            "Retry-After",
                            HeaderBuilder::new()
                                .schema(Some(
                                    ObjectBuilder::new().schema_type(Type::Integer).build(),
                                ))
                                .description(Some("Seconds to wait"))
                                .build(),
                        );
                    }
                    if let Some(allow) = allow {
                        response = response.header(
                            "Allow",
                            HeaderBuilder::new()
                                .schema(Some(string()))
                                .description(Some(format!("`{allow}`")))
                                .build(),
                        );
                    }
                    (status.to_string(), RefOr::T(response.build()))
                },
            )
            .collect()
    }
}
