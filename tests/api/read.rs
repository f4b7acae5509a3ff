//! Issue 13: reads. Every GET of a photo (both spellings), its sizes, metadata and size list;
//! photo-not-found against graph-rejected; the read cache (hit, 304, revalidation, invalidation
//! after a write, bounded bytes); the scope asked of Entra per (kind, access), the self scope for
//! one's own object id included; the read grants of the policy.

use photo_gateway_emulators::CallerTokenSpec;
use photo_gateway_emulators::directory::{
    CONTACT_FOLDER_ID, CONTACT_ID, DEMO_USER_ID, FOLDER_CONTACT_ID, GROUP_ID,
};
use photo_gateway_emulators::sample_jpeg;
use photo_gateway_emulators::teams::TEAM_ID;

use crate::support::{DEMO, ME, MEGAN, TestApp, jpeg, spawn_app, spawn_app_with, user_photo};

/// A photo large enough for Exchange's sizes up to 648.
fn big_photo(seed: &str) -> Vec<u8> {
    sample_jpeg(700, 700, seed)
}

/// The Graph scope names the gateway asked Entra for, so far.
pub fn scopes_asked(app: &TestApp) -> Vec<String> {
    app.emus
        .entra
        .counters()
        .by_scope
        .keys()
        .flat_map(|s| {
            s.split_whitespace()
                .map(|one| one.rsplit('/').next().unwrap_or(one).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

pub async fn get(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn both_spellings(path: &str) -> [String; 2] {
    [path.to_owned(), path.replace("$value", "%24value")]
}

#[tokio::test]
async fn every_target_is_read_in_both_spellings_with_graphs_type_etag_and_private_caching() {
    let app = spawn_app().await;
    let g = &app.emus.graph;
    let targets = [
        (format!("/users/{DEMO}"), ME.to_owned()),
        (format!("/users/{MEGAN}"), user_photo(MEGAN)),
        (
            format!("/groups/{GROUP_ID}"),
            format!("/v1.0/groups/{GROUP_ID}/photo/$value"),
        ),
        (
            format!("/users/{DEMO}/contacts/{CONTACT_ID}"),
            format!("/v1.0/me/contacts/{CONTACT_ID}/photo/$value"),
        ),
        (
            format!("/users/{DEMO}/contacts/{CONTACT_ID}"),
            format!("/v1.0/users/{DEMO}/contacts/{CONTACT_ID}/photo/$value"),
        ),
        (
            format!(
                "/users/{DEMO}/contactFolders/{CONTACT_FOLDER_ID}/contacts/{FOLDER_CONTACT_ID}"
            ),
            format!(
                "/v1.0/me/contactFolders/{CONTACT_FOLDER_ID}/contacts/{FOLDER_CONTACT_ID}/photo/$value"
            ),
        ),
        (
            format!(
                "/users/{DEMO}/contactFolders/{CONTACT_FOLDER_ID}/contacts/{FOLDER_CONTACT_ID}"
            ),
            format!(
                "/v1.0/users/{DEMO}/contactFolders/{CONTACT_FOLDER_ID}/contacts/{FOLDER_CONTACT_ID}/photo/$value"
            ),
        ),
        (
            format!("/groups/{TEAM_ID}"),
            format!("/v1.0/teams/{TEAM_ID}/photo/$value"),
        ),
    ];
    let token = app.token(DEMO);
    for (store, path) in &targets {
        // One photo per stored target (two paths name the same contact).
        let photo = jpeg(300 + store.len(), store.len() as u8);
        assert!(g.set_photo(store, &photo, "image/jpeg"), "{store}");
        for p in both_spellings(path) {
            let resp = get(&app, &p, &token).await;
            assert_eq!(resp.status(), 200, "{p}: {}", resp.text().await.unwrap());
            let h = resp.headers().clone();
            assert_eq!(h["content-type"], "image/jpeg", "{p}");
            assert!(h["etag"].to_str().unwrap().starts_with('"'), "{p}");
            assert_eq!(h["cache-control"], "private, max-age=300", "{p}");
            assert_eq!(resp.bytes().await.unwrap().as_ref(), photo, "{p}");
        }
    }
}

#[tokio::test]
async fn sizes_metadata_and_the_size_list_pass_through_and_a_size_exchange_lacks_is_400() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    for store in [
        format!("/users/{DEMO}"),
        format!("/users/{MEGAN}"),
        format!("/groups/{GROUP_ID}"),
    ] {
        assert!(
            app.emus
                .graph
                .set_photo(&store, &big_photo(&store), "image/jpeg")
        );
    }
    for base in [
        "/v1.0/me",
        &format!("/v1.0/users/{MEGAN}"),
        &format!("/v1.0/groups/{GROUP_ID}"),
    ] {
        for p in both_spellings(&format!("{base}/photos/96x96/$value")) {
            let resp = get(&app, &p, &token).await;
            assert_eq!(resp.status(), 200, "{p}: {}", resp.text().await.unwrap());
            assert_eq!(resp.headers()["content-type"], "image/jpeg");
            assert!(resp.headers().contains_key("etag"));
            let bytes = resp.bytes().await.unwrap();
            let mut decoder = jpeg_decoder::Decoder::new(&bytes[..]);
            decoder.read_info().unwrap();
            let info = decoder.info().unwrap();
            assert_eq!((info.width, info.height), (96, 96), "{p}");
        }
        for bad in ["100x100", "96x48", "big"] {
            let resp = get(&app, &format!("{base}/photos/{bad}/$value"), &token).await;
            let (status, _, body) = TestApp::problem(resp).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (400, Some("invalid-parameter")),
                "{bad}"
            );
        }
        let resp = get(&app, &format!("{base}/photo"), &token).await;
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["cache-control"]
                .to_str()
                .unwrap()
                .starts_with("private")
        );
        let meta: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(meta["width"], 700, "{meta}");
        assert!(meta["@odata.mediaEtag"].is_string(), "{meta}");
        let resp = get(&app, &format!("{base}/photos"), &token).await;
        assert_eq!(resp.status(), 200);
        let list: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(list["value"].as_array().unwrap().len(), 9, "{list}");
    }
    let resp = get(&app, &format!("/v1.0/teams/{TEAM_ID}/photo"), &token).await;
    assert_eq!(resp.status(), 200);
    // Contacts and teams have no sizes.
    let resp = get(
        &app,
        &format!("/v1.0/teams/{TEAM_ID}/photos/96x96/$value"),
        &token,
    )
    .await;
    assert_eq!(TestApp::problem(resp).await.2["code"], "not-found");
}

#[tokio::test]
async fn a_missing_photo_is_photo_not_found_and_an_unknown_user_stays_graph_rejected() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let (status, _, body) = TestApp::problem(get(&app, ME, &token).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("photo-not-found")),
        "{body}"
    );
    assert_eq!(body["upstream"], "graph");
    assert_eq!(body["graphError"]["code"], "ImageNotFound");
    let resp = get(&app, &user_photo("nobody@contoso.onmicrosoft.com"), &token).await;
    let (status, _, body) = TestApp::problem(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("graph-rejected")),
        "{body}"
    );
    assert_eq!(body["graphError"]["code"], "Request_ResourceNotFound");
}

fn graph_gets(app: &TestApp, template: &str, status: u16) -> u64 {
    app.emus.graph.counters().count("GET", template, status)
}

#[tokio::test]
async fn the_read_cache_answers_repeats_and_304s_and_forgets_a_target_this_replica_changed() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let first = jpeg(500, 1);
    assert!(
        app.emus
            .graph
            .set_photo(&format!("/users/{MEGAN}"), &first, "image/jpeg")
    );
    let path = user_photo(MEGAN);
    let resp = get(&app, &path, &token).await;
    assert_eq!(resp.status(), 200);
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), first);
    let template = "/users/{id}/photo/$value";
    assert_eq!(graph_gets(&app, template, 200), 1);

    // A repeat is answered from the cache: Graph sees no second GET.
    let resp = get(&app, &path, &token).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), first);
    assert_eq!(graph_gets(&app, template, 200), 1, "cache hit");

    // The caller already holds it: 304, no body, the same ETag.
    let resp = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
    assert!(resp.bytes().await.unwrap().is_empty());

    // A write through this gateway drops the cached copy: the next read is new.
    let second = jpeg(600, 2);
    let resp = app.put_raw(&path, &token, second.clone()).await;
    assert_eq!(resp.status(), 200);
    let resp = get(&app, &path, &token).await;
    assert_ne!(resp.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), second);
    assert_eq!(graph_gets(&app, template, 200), 2);
    // The old ETag no longer matches.
    let resp = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A read that took Graph's old photo before a write landed, and answers after it, must not leave
/// that old photo in the cache: the write's invalidation found nothing to drop yet.
#[tokio::test]
async fn a_read_overtaken_by_a_write_does_not_cache_the_old_photo() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let old = jpeg(500, 1);
    assert!(
        app.emus
            .graph
            .set_photo(&format!("/users/{MEGAN_ID}"), &old, "image/jpeg")
    );
    // By object id: one cache key for the read and the write whatever the gateway learned.
    let path = user_photo(MEGAN_ID);

    app.emus.graph.hold_reads(true);
    let read = tokio::spawn({
        let (client, url, token) = (
            app.client.clone(),
            format!("{}{path}", app.address),
            token.clone(),
        );
        async move {
            let resp = client.get(url).bearer_auth(token).send().await.unwrap();
            (resp.status(), resp.bytes().await.unwrap())
        }
    });
    // Graph has taken the read's snapshot (the old photo) and holds its answer.
    for _ in 0..500 {
        if app.emus.graph.held_reads() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        app.emus.graph.held_reads(),
        1,
        "the read never reached Graph"
    );
    let new = jpeg(600, 2);
    let resp = app.put_raw(&path, &token, new.clone()).await;
    assert_eq!(resp.status(), 200);
    app.emus.graph.hold_reads(false);
    let (status, body) = read.await.unwrap();
    // That read answers what Graph had when it asked.
    assert_eq!((status.as_u16(), body.as_ref()), (200, old.as_slice()));

    // The next read is the new photo, fetched from Graph again.
    let resp = get(&app, &path, &token).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.bytes().await.unwrap() == new,
        "the old photo was cached"
    );
    assert_eq!(graph_gets(&app, "/users/{id}/photo/$value", 200), 2);
}

/// Megan's object id in the emulators' seed (`MEGAN` is her UPN).
const MEGAN_ID: &str = "5b0f9a8e-0000-4c11-8a01-000000000102";

/// With a read scope that may look users up (here the consented `User.ReadWrite.All`), a UPN is
/// keyed by its object id. README says the other case: `ProfilePhoto.Read.All`, the default, may
/// not look users up, and a UPN is then an entry of its own until max-age.
#[tokio::test]
async fn one_user_is_one_cache_entry_whether_named_by_upn_or_object_id() {
    let app = spawn_app_with(|v| {
        v.push((
            "PHOTO_GATEWAY_SCOPE_READ_USERS".into(),
            "User.ReadWrite.All".into(),
        ));
    })
    .await;
    let token = app.token(DEMO);
    let first = jpeg(500, 3);
    assert!(
        app.emus
            .graph
            .set_photo(&format!("/users/{MEGAN_ID}"), &first, "image/jpeg")
    );
    let template = "/users/{id}/photo/$value";
    let by_upn = user_photo(MEGAN);
    let by_id = user_photo(MEGAN_ID);
    let resp = get(&app, &by_upn, &token).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), first);
    // The object id names the same entry: answered from the cache.
    let resp = get(&app, &by_id, &token).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), first);
    assert_eq!(
        graph_gets(&app, template, 200),
        1,
        "one entry for both names"
    );

    // A write by object id drops what a read by UPN cached: the next read by UPN is the new photo.
    let second = jpeg(600, 4);
    assert_eq!(
        app.put_raw(&by_id, &token, second.clone()).await.status(),
        200
    );
    let resp = get(&app, &by_upn, &token).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), second);
    assert_eq!(graph_gets(&app, template, 200), 2);
}

#[tokio::test]
async fn a_stale_copy_is_revalidated_with_its_etag_and_graphs_304_renews_it() {
    let app = spawn_app_with(|v| {
        v.push(("PHOTO_GATEWAY_READ_CACHE_MAX_AGE_SECS".into(), "0".into()));
    })
    .await;
    let token = app.token(DEMO);
    let photo = jpeg(400, 3);
    assert!(
        app.emus
            .graph
            .set_photo(&format!("/users/{DEMO}"), &photo, "image/jpeg")
    );
    for _ in 0..2 {
        let resp = get(&app, ME, &token).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "private, max-age=0");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), photo);
    }
    assert_eq!(graph_gets(&app, "/me/photo/$value", 200), 1);
    assert_eq!(graph_gets(&app, "/me/photo/$value", 304), 1, "revalidated");
}

#[tokio::test]
async fn the_read_cache_is_bounded_by_bytes_and_zero_turns_it_off() {
    for (max, photo_len) in [("2048", 4000), ("0", 400)] {
        let app = spawn_app_with(|v| {
            v.push(("PHOTO_GATEWAY_READ_CACHE_MAX_BYTES".into(), max.into()));
        })
        .await;
        let token = app.token(DEMO);
        let photo = jpeg(photo_len, 4);
        assert!(
            app.emus
                .graph
                .set_photo(&format!("/users/{DEMO}"), &photo, "image/jpeg")
        );
        for _ in 0..3 {
            let resp = get(&app, ME, &token).await;
            assert_eq!(resp.bytes().await.unwrap().as_ref(), photo);
        }
        assert_eq!(
            graph_gets(&app, "/me/photo/$value", 200),
            3,
            "max {max}: a photo over the bound is never kept"
        );
    }
}

#[tokio::test]
async fn entra_is_asked_for_the_least_scope_of_each_kind_and_access() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let g = &app.emus.graph;
    assert!(g.set_photo(&format!("/users/{MEGAN}"), &jpeg(300, 1), "image/jpeg"));
    assert!(g.set_photo(&format!("/groups/{GROUP_ID}"), &jpeg(300, 2), "image/jpeg"));
    assert!(g.set_photo(&format!("/users/{DEMO}"), &jpeg(300, 3), "image/jpeg"));
    assert!(g.set_photo(
        &format!("/users/{DEMO}/contacts/{CONTACT_ID}"),
        &jpeg(300, 4),
        "image/jpeg"
    ));
    let cases: Vec<(&str, String, &str)> = vec![
        ("GET", ME.to_owned(), "User.Read"),
        ("GET", user_photo(DEMO_USER_ID), "User.Read"),
        ("GET", user_photo(MEGAN), "ProfilePhoto.Read.All"),
        (
            "GET",
            format!("/v1.0/groups/{GROUP_ID}/photo/$value"),
            "ProfilePhoto.Read.All",
        ),
        (
            "GET",
            format!("/v1.0/me/contacts/{CONTACT_ID}/photo/$value"),
            "Contacts.Read",
        ),
        (
            "GET",
            format!("/v1.0/teams/{TEAM_ID}/photo/$value"),
            "Team.ReadBasic.All",
        ),
        // The self-scope fix: one's own object id is written with User.ReadWrite, not .All.
        ("PUT", user_photo(DEMO_USER_ID), "User.ReadWrite"),
        (
            "PUT",
            format!("/v1.0/teams/{TEAM_ID}/photo/$value"),
            "TeamSettings.ReadWrite.All",
        ),
        ("DELETE", user_photo(MEGAN), "ProfilePhoto.ReadWrite.All"),
    ];
    for (method, path, scope) in cases {
        let before = scopes_asked(&app);
        let resp = app
            .send_raw(method, &path, Some(&token), jpeg(300, 9), "image/jpeg")
            .await;
        assert!(
            resp.status().is_success(),
            "{method} {path}: {}",
            resp.text().await.unwrap()
        );
        let after = scopes_asked(&app);
        let new: Vec<&String> = after.iter().filter(|s| !before.contains(s)).collect();
        assert!(
            after.iter().any(|s| s == scope),
            "{method} {path}: asked {after:?}, wanted {scope}"
        );
        assert!(new.len() <= 1, "{method} {path}: {new:?}");
    }
    let asked = scopes_asked(&app);
    assert!(
        !asked.iter().any(|s| s == "User.ReadWrite.All"),
        "{asked:?}"
    );
    // The DELETE removed Megan's photo.
    assert!(g.photo_of_user(MEGAN).is_none());
}

#[tokio::test]
async fn reading_others_photos_needs_a_read_grant_and_a_read_grant_writes_nothing() {
    let app = spawn_app_with(|v| {
        v.push((
            "PHOTO_GATEWAY_CALLER_POLICY".into(),
            "reader-app=users:read".into(),
        ));
    })
    .await;
    assert!(
        app.emus
            .graph
            .set_photo(&format!("/users/{MEGAN}"), &jpeg(300, 1), "image/jpeg")
    );
    assert!(
        app.emus
            .graph
            .set_photo(&format!("/users/{DEMO}"), &jpeg(300, 2), "image/jpeg")
    );
    assert!(
        app.emus
            .graph
            .set_photo(&format!("/groups/{GROUP_ID}"), &jpeg(300, 3), "image/jpeg")
    );
    let reader = app.token_with(CallerTokenSpec::for_user(DEMO).app("reader-app"));
    let other = app.token_with(CallerTokenSpec::for_user(DEMO).app("other-app"));
    // Reading one's own photo needs no grant.
    for t in [&reader, &other] {
        assert_eq!(get(&app, ME, t).await.status(), 200);
    }
    assert_eq!(get(&app, &user_photo(MEGAN), &reader).await.status(), 200);
    for (token, path) in [
        (&other, user_photo(MEGAN)),
        (&reader, format!("/v1.0/groups/{GROUP_ID}/photo/$value")),
    ] {
        let (status, _, body) = TestApp::problem(get(&app, &path, token).await).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("caller-not-allowed")),
            "{path}"
        );
    }
    let resp = app.put_raw(&user_photo(MEGAN), &reader, jpeg(300, 5)).await;
    assert_eq!(TestApp::problem(resp).await.2["code"], "caller-not-allowed");
    let resp = app
        .send_raw(
            "DELETE",
            &user_photo(MEGAN),
            Some(&reader),
            vec![],
            "image/jpeg",
        )
        .await;
    assert_eq!(TestApp::problem(resp).await.2["code"], "caller-not-allowed");
    assert!(app.emus.graph.photo_of_user(MEGAN).is_some());
}
