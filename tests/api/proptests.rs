//! Property tests (issue 5, "Fuzzing"): path-id validation and Graph path encoding, JPEG sniffing,
//! and arbitrary multipart bodies through the real server.

use percent_encoding::percent_decode_str;
use photo_gateway::graph::{PhotoTarget, TargetError};
use photo_gateway::upload::sniff;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

use crate::support::{DEMO, JPEG_MIN_LEN, ME, TestApp, jpeg, spawn_app};

/// Characters that may stand literally in a request path segment (RFC 3986 `pchar` minus `%`).
fn literal_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

/// Percent-encodes `id` for a request path: bytes that cannot stand literally always, the others
/// when `force` says so (so both `a` and `%61` are exercised).
fn encode_id(id: &[u8], force: &[bool]) -> String {
    let mut out = String::new();
    for (i, b) in id.iter().enumerate() {
        if literal_ok(*b) && !force.get(i).copied().unwrap_or(false) {
            out.push(*b as char);
        } else if force.get(i).copied().unwrap_or(false) && i % 2 == 0 {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether the gateway must refuse this decoded id (errors table: empty, `.`/`..`, or containing
/// `/`, `\` or a control character; plus bytes that are not UTF-8).
fn must_refuse(id: &[u8]) -> bool {
    match std::str::from_utf8(id) {
        Err(_) => true,
        Ok(s) => {
            s.is_empty()
                || s == "."
                || s == ".."
                || s.chars().any(|c| c == '/' || c == '\\' || c.is_control())
        }
    }
}

/// Bytes for ids: mostly printable ASCII, with the interesting ones (separators, dots, `%`,
/// controls, UTF-8 lead and continuation bytes, invalid bytes) well represented.
fn id_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        6 => prop::sample::select(b"abcXYZ0189-_.~@+=:#?%&;".to_vec()),
        2 => prop::sample::select(vec![b'/', b'\\', b'.', b' ', 0u8, b'\r', b'\n', 0x7f]),
        2 => prop::sample::select(vec![0xC3u8, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80, 0xC2, 0x85, 0x9B]),
        1 => any::<u8>(),
    ];
    prop_oneof![
        1 => Just(Vec::new()),
        1 => Just(b".".to_vec()),
        1 => Just(b"..".to_vec()),
        20 => prop::collection::vec(byte, 1..24),
    ]
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // No regression files inside the repository; a failure prints its minimal input.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    }
}

/// Checks one encoded id in every id position of the seven shapes.
fn check_id(id: &[u8], encoded: &str) -> Result<(), TestCaseError> {
    let refuse = must_refuse(id);
    // (request path, index of the id in the Graph path split at `/`, segment count).
    let shapes: Vec<(String, usize, usize)> = vec![
        (format!("/v1.0/users/{encoded}/photo/$value"), 2, 5),
        (format!("/v1.0/groups/{encoded}/photo/$value"), 2, 5),
        (format!("/v1.0/me/contacts/{encoded}/photo/$value"), 3, 6),
        (
            format!("/v1.0/users/{encoded}/contacts/c1/photo/$value"),
            2,
            7,
        ),
        (
            format!("/v1.0/users/u1/contacts/{encoded}/photo/%24value"),
            4,
            7,
        ),
        (
            format!("/v1.0/me/contactFolders/{encoded}/contacts/c1/photo/$value"),
            3,
            8,
        ),
        (
            format!("/v1.0/users/u1/contactfolders/f1/contacts/{encoded}/photo/$value"),
            6,
            9,
        ),
    ];
    for (path, position, expected_len) in shapes {
        let parsed = PhotoTarget::parse(&path);
        if refuse {
            prop_assert!(
                matches!(parsed, Err(TargetError::InvalidId(_))),
                "{path}: must be refused as an invalid id, got {parsed:?}"
            );
            continue;
        }
        let target = match parsed {
            Ok(t) => t,
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "{path}: a valid id was refused: {e:?}"
                )));
            }
        };
        let graph = target.graph_path();
        let segs: Vec<&str> = graph.split('/').collect();
        // The Graph path has exactly the shape's segments: no id can add or remove one.
        prop_assert_eq!(segs.len(), expected_len, "{} → {}", path, graph);
        let seg = segs[position];
        let decoded = percent_decode_str(seg).decode_utf8();
        prop_assert!(decoded.is_ok(), "{} → {}: segment not UTF-8", path, graph);
        let decoded = decoded.unwrap().into_owned();
        prop_assert_eq!(
            decoded.as_bytes(),
            id,
            "{} → {}: the id round-trips",
            path,
            graph
        );
        // What Graph gets is unambiguous: no literal delimiter and no stray `%` in the segment.
        prop_assert!(
            !seg.contains(['?', '#', ' ', '\\', '"']),
            "{} → {}",
            path,
            graph
        );
        prop_assert!(
            seg.match_indices('%').all(|(i, _)| seg
                .get(i + 1..i + 3)
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))),
            "{} → {}: every % starts an escape",
            path,
            graph
        );
        prop_assert!(graph.ends_with("/photo/$value"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(2_000))]

    #[test]
    fn path_ids_are_refused_exactly_when_the_table_says_and_round_trip_otherwise(
        id in id_bytes(),
        force in prop::collection::vec(any::<bool>(), 0..24),
    ) {
        let encoded = encode_id(&id, &force);
        check_id(&id, &encoded)?;
    }

    #[test]
    fn parse_never_panics_on_any_path(path in "/[ -~]{0,80}", raw in any::<String>()) {
        let _ = PhotoTarget::parse(&path).map(|t| t.graph_path());
        let _ = PhotoTarget::parse(&raw).map(|t| t.graph_path());
        let _ = PhotoTarget::parse(&format!("/v1.0/users/{raw}/photo/$value")).map(|t| t.graph_path());
    }

    #[test]
    fn sniffing_never_panics_and_agrees_with_itself(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        jpeg_prefix in any::<bool>(),
    ) {
        let mut b = bytes;
        if jpeg_prefix {
            b.splice(0..0, [0xFF, 0xD8, 0xFF]);
        }
        let is = sniff::is_jpeg(&b);
        let detected = sniff::detect(&b);
        prop_assert_eq!(is, detected == Some(sniff::JPEG), "{:?}", b);
        // Only the first four bytes decide.
        if b.len() >= 4 {
            prop_assert_eq!(is, sniff::is_jpeg(&b[..4]));
        } else {
            prop_assert!(!is);
        }
        if is {
            prop_assert_eq!(&b[..2], &[0xFF, 0xD8]);
        }
    }
}

/// One part of a generated multipart body.
#[derive(Debug, Clone)]
struct GenPart {
    headers: Vec<u8>,
    content: Vec<u8>,
}

fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(b"Content-Disposition: form-data; name=\"photo\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg".to_vec()),
        1 => Just(b"Content-Disposition: form-data; name=\"other\"".to_vec()),
        1 => Just(b"Content-Type: multipart/mixed; boundary=x".to_vec()),
        2 => prop::collection::vec(
            prop::sample::select(b"Content-Disposition:form-data;name=\"photo\"\r\n\t :;=\x00\xff".to_vec()),
            0..80,
        ),
        1 => prop::collection::vec(any::<u8>(), 0..80),
    ]
}

fn content_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => (JPEG_MIN_LEN..2_000, any::<u8>()).prop_map(|(n, s)| jpeg(n, s)),
        1 => prop::collection::vec(any::<u8>(), 0..300),
        1 => Just(Vec::new()),
    ]
}

fn gen_body() -> impl Strategy<Value = (String, Vec<u8>)> {
    let boundary = prop_oneof![
        3 => Just("XyZ-b0undary".to_owned()),
        1 => "[ -~]{0,20}",
    ];
    let part = (header_bytes(), content_bytes())
        .prop_map(|(headers, content)| GenPart { headers, content });
    (
        boundary,
        prop::collection::vec(part, 0..4),
        any::<bool>(),
        prop::option::of(0usize..4_000),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(boundary, parts, close, cut, preamble)| {
            let mut body = preamble;
            for p in &parts {
                body.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
                body.extend_from_slice(&p.headers);
                body.extend_from_slice(b"\r\n\r\n");
                body.extend_from_slice(&p.content);
            }
            if close {
                body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            }
            if let Some(c) = cut {
                body.truncate(c);
            }
            (
                format!("multipart/form-data; boundary=\"{boundary}\""),
                body,
            )
        })
}

#[test]
fn arbitrary_multipart_bodies_never_get_a_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app: TestApp = rt.block_on(spawn_app());
    let token = app.token(DEMO);
    let mut runner = proptest::test_runner::TestRunner::new(config(24));
    runner
        .run(&gen_body(), |(ct, body)| {
            let resp = rt.block_on(app.send_raw("PUT", ME, Some(&token), body, &ct));
            let status = resp.status().as_u16();
            let text = rt.block_on(resp.text()).unwrap_or_default();
            prop_assert!(status < 500, "{} for {}: {}", status, ct, text);
            prop_assert!(
                status == 200 || (400..500).contains(&status),
                "{}: {}",
                status,
                text
            );
            if status != 200 {
                let problem: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                prop_assert!(
                    matches!(
                        problem["code"].as_str(),
                        Some(
                            "invalid-body"
                                | "photo-too-large"
                                | "unsupported-media-type"
                                | "image-unreadable"
                        )
                    ),
                    "{}: {}",
                    status,
                    text
                );
            }
            Ok(())
        })
        .unwrap();
    // And the server is still fine.
    let resp = rt.block_on(app.put_raw(ME, &token, jpeg(500, 1)));
    assert_eq!(resp.status(), 200);
}
