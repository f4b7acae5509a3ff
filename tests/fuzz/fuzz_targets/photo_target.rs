//! `PhotoTarget::parse` + `graph_path` on arbitrary request paths, and on arbitrary bytes placed
//! in every id position. Checks the invariants of the errors table: an accepted id is never
//! empty, `.`/`..`, and never contains `/`, `\` or a control character; the Graph path has
//! exactly the shape's segments and every id in it decodes back to the accepted id.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photo_gateway::graph::{PhotoTarget, TargetError};

fn decode(seg: &str) -> String {
    percent_decode(seg).expect("every Graph path segment decodes to UTF-8")
}

/// Minimal percent-decoding (kept here so the check does not share code with the gateway).
fn percent_decode(seg: &str) -> Option<String> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && !id.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

fn check(path: &str) {
    let Ok(target) = PhotoTarget::parse(path) else {
        return;
    };
    let ids: Vec<&str> = match &target {
        PhotoTarget::Me => vec![],
        PhotoTarget::User { user } => vec![user],
        PhotoTarget::Group { group } => vec![group],
        PhotoTarget::MyContact { folder, contact } => folder
            .iter()
            .map(String::as_str)
            .chain([contact.as_str()])
            .collect(),
        PhotoTarget::UserContact {
            user,
            folder,
            contact,
        } => [user.as_str()]
            .into_iter()
            .chain(folder.iter().map(String::as_str))
            .chain([contact.as_str()])
            .collect(),
    };
    for id in &ids {
        assert!(acceptable(id), "{path:?}: accepted id {id:?}");
    }
    let graph = target.graph_path();
    assert!(
        graph.starts_with('/') && graph.ends_with("/photo/$value"),
        "{graph}"
    );
    assert!(!graph.contains(['?', '#', ' ']), "{path:?} → {graph}");
    let segs: Vec<&str> = graph.split('/').skip(1).collect();
    // Literal segments alternate with ids: me | users,X | groups,X | …contacts,X | contactFolders,X.
    let mut decoded_ids = Vec::new();
    let mut i = 0;
    while i < segs.len() - 2 {
        match segs[i] {
            "me" => i += 1,
            "users" | "groups" | "contacts" | "contactFolders" => {
                decoded_ids.push(decode(segs[i + 1]));
                i += 2;
            }
            other => panic!("{path:?} → {graph}: unexpected segment {other:?}"),
        }
    }
    assert_eq!(&segs[segs.len() - 2..], ["photo", "$value"], "{graph}");
    assert_eq!(
        decoded_ids,
        ids.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "{path:?} → {graph}: ids round-trip"
    );
    assert_eq!(target.template().matches('{').count(), ids.len());
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check(&text);
    // The same bytes as an id (each byte percent-encoded, so any byte can reach the decoder).
    let enc: String = data.iter().map(|b| format!("%{b:02X}")).collect();
    for shape in [
        "/v1.0/users/{}/photo/$value",
        "/v1.0/groups/{}/photo/%24value",
        "/v1.0/me/contactFolders/{}/contacts/c/photo/$value",
        "/v1.0/users/u/contactfolders/f/contacts/{}/photo/$value",
    ] {
        let path = shape.replace("{}", &enc);
        let parsed = PhotoTarget::parse(&path);
        let must_refuse = match std::str::from_utf8(data) {
            Ok(s) => !acceptable(s),
            Err(_) => true,
        };
        assert_eq!(
            must_refuse,
            matches!(parsed, Err(TargetError::InvalidId(_))),
            "{path}: {parsed:?}"
        );
        check(&path);
        // And literally, where the bytes may contain `/` and change the shape.
        check(&shape.replace("{}", &text));
    }
});
