//! Every Graph path × PUT/PATCH × multipart/raw reaches Graph exactly: method, path, content
//! type, bytes, and a token for the right scope.

use photo_gateway_emulators::directory::{
    CONTACT_FOLDER_ID, CONTACT_ID, DEMO_USER_UPN, FOLDER_CONTACT_ID, GROUP_ID, GUEST_USER_UPN,
};

use crate::support::{
    DEMO, GUEST_PHOTO, ME, MEGAN, group_photo, jpeg, sha256_hex, spawn_app, user_photo,
};

/// (gateway path, Graph path it must call, scope the Graph token must carry)
fn cases() -> Vec<(String, String, &'static str)> {
    vec![
        (ME.into(), ME.into(), "User.ReadWrite"),
        (user_photo(MEGAN), user_photo(MEGAN), "User.ReadWrite.All"),
        (
            group_photo(GROUP_ID),
            group_photo(GROUP_ID),
            "Group.ReadWrite.All",
        ),
        (
            format!("/v1.0/me/contacts/{CONTACT_ID}/photo/$value"),
            format!("/v1.0/me/contacts/{CONTACT_ID}/photo/$value"),
            "Contacts.ReadWrite",
        ),
        (
            format!("/v1.0/users/{DEMO_USER_UPN}/contacts/{CONTACT_ID}/photo/$value"),
            format!("/v1.0/users/{DEMO_USER_UPN}/contacts/{CONTACT_ID}/photo/$value"),
            "Contacts.ReadWrite",
        ),
        (
            format!(
                "/v1.0/me/contactfolders/{CONTACT_FOLDER_ID}/contacts/{FOLDER_CONTACT_ID}/photo/$value"
            ),
            format!(
                "/v1.0/me/contactFolders/{CONTACT_FOLDER_ID}/contacts/{FOLDER_CONTACT_ID}/photo/$value"
            ),
            "Contacts.ReadWrite",
        ),
        (
            format!(
                "/v1.0/users/{DEMO_USER_UPN}/contactfolders/{CONTACT_FOLDER_ID}/contacts/{FOLDER_CONTACT_ID}/photo/$value"
            ),
            format!(
                "/v1.0/users/{DEMO_USER_UPN}/contactFolders/{CONTACT_FOLDER_ID}/contacts/{FOLDER_CONTACT_ID}/photo/$value"
            ),
            "Contacts.ReadWrite",
        ),
    ]
}

#[tokio::test]
async fn every_path_method_and_body_form_reaches_graph_exactly() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let mut seed = 0u8;
    for (path, graph_path, scope) in cases() {
        for method in ["PUT", "PATCH"] {
            for multipart in [false, true] {
                seed = seed.wrapping_add(1);
                let photo = jpeg(10_000 + seed as usize, seed);
                app.emus.graph.clear_requests();
                let resp = if multipart {
                    app.send_multipart(method, &path, &token, photo.clone())
                        .await
                } else {
                    app.send_raw(
                        method,
                        &path,
                        Some(&token),
                        photo.clone(),
                        "application/octet-stream",
                    )
                    .await
                };
                let what = format!("{method} {path} multipart={multipart}");
                assert_eq!(resp.status(), 200, "{what}: {}", resp.text().await.unwrap());
                let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
                let receipt: serde_json::Value = resp.json().await.unwrap();
                let seen = app.emus.graph.requests();
                assert_eq!(seen.len(), 1, "{what}: exactly one Graph call");
                let g = &seen[0];
                assert_eq!(g.method, method, "{what}");
                assert_eq!(g.path, graph_path.replace('#', "%23"), "{what}");
                assert_eq!(g.content_type.as_deref(), Some("image/jpeg"), "{what}");
                assert_eq!(g.bytes, photo.len(), "{what}");
                assert_eq!(g.sha256, sha256_hex(&photo), "{what}");
                assert_eq!(g.scp.as_deref(), Some(scope), "{what}: token scope");
                assert_eq!(
                    g.client_request_id.as_deref(),
                    Some(rid.as_str()),
                    "{what}: one id end to end"
                );
                assert_eq!(receipt["method"], method);
                assert_eq!(receipt["bytes"], photo.len());
                assert_eq!(receipt["sha256"], sha256_hex(&photo));
                assert_eq!(receipt["contentType"], "image/jpeg");
                assert_eq!(receipt["clientRequestId"], rid);
                assert_eq!(receipt["target"], graph_path.trim_start_matches("/v1.0"));
                assert!(
                    receipt["graphRequestId"]
                        .as_str()
                        .is_some_and(|s| !s.is_empty()),
                    "{what}: Graph request id"
                );
            }
        }
    }
}

#[tokio::test]
async fn guest_upn_reaches_graph_percent_encoded() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let photo = jpeg(2048, 7);
    let resp = app.put_raw(GUEST_PHOTO, &token, photo.clone()).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let seen = app.emus.graph.requests();
    assert_eq!(seen[0].path, GUEST_PHOTO);
    // And Graph stored it under the guest: the bytes read back are the bytes sent.
    let stored = app
        .emus
        .graph
        .photo_of_user(GUEST_USER_UPN)
        .expect("guest has a photo");
    assert_eq!(stored, photo);
}

#[tokio::test]
async fn segment_names_are_case_insensitive_and_percent_24_value_is_value() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    for path in [
        format!(
            "/v1.0/me/contactFolders/{CONTACT_FOLDER_ID}/contacts/{FOLDER_CONTACT_ID}/photo/%24value"
        ),
        "/v1.0/ME/Photo/%24VALUE".to_owned(),
        format!("/v1.0/Groups/{GROUP_ID}/photo/$Value"),
    ] {
        let resp = app.put_raw(&path, &token, jpeg(1000, 3)).await;
        assert_eq!(resp.status(), 200, "{path}: {}", resp.text().await.unwrap());
    }
}

#[tokio::test]
async fn request_id_is_accepted_echoed_and_forwarded() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let resp = app
        .client
        .put(format!("{}{ME}", app.address))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .header("x-request-id", "caller-chosen-id-42")
        .body(jpeg(500, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "caller-chosen-id-42");
    assert_eq!(
        app.emus.graph.requests()[0].client_request_id.as_deref(),
        Some("caller-chosen-id-42")
    );

    // An insane id is replaced, never forwarded.
    let resp = app
        .client
        .put(format!("{}{ME}", app.address))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .header("x-request-id", "bad id with spaces")
        .body(jpeg(500, 1))
        .send()
        .await
        .unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(rid, "bad id with spaces");
    assert!(uuid_like(&rid), "{rid}");
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}
