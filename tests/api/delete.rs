//! Issue 13: deletes and the methods a path does not answer. DELETE of me, users, groups (both
//! spellings) → 204 and the photo gone; contacts and teams → 405 with `Allow`; Graph's admin rule
//! for another user's photo; the audit line.

use photo_gateway_emulators::directory::{CONTACT_ID, GROUP_ID};
use photo_gateway_emulators::roles::{PLAIN_USER_ID, PLAIN_USER_UPN};
use photo_gateway_emulators::teams::TEAM_ID;

use crate::support::{DEMO, ME, MEGAN, TestApp, captured_logs, jpeg, spawn_app, user_photo};

async fn delete(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.send_raw("DELETE", path, Some(token), vec![], "image/jpeg")
        .await
}

#[tokio::test]
async fn me_users_and_groups_are_deleted_in_both_spellings() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let g = &app.emus.graph;
    let cases = [
        (format!("/users/{DEMO}"), ME.to_owned()),
        (format!("/users/{MEGAN}"), user_photo(MEGAN)),
        (
            format!("/groups/{GROUP_ID}"),
            format!("/v1.0/groups/{GROUP_ID}/photo/$value"),
        ),
    ];
    for (store, path) in &cases {
        for p in [path.clone(), path.replace("$value", "%24value")] {
            assert!(g.set_photo(store, &jpeg(300, 1), "image/jpeg"));
            // Read first, so the cache holds it: the delete must drop it.
            let resp = app
                .client
                .get(format!("{}{p}", app.address))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{p}");
            let resp = delete(&app, &p, &token).await;
            assert_eq!(resp.status(), 204, "{p}: {}", resp.text().await.unwrap());
            assert!(g.photo(store).is_none(), "{p}: Graph no longer has it");
            let resp = app
                .client
                .get(format!("{}{p}", app.address))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let (status, _, body) = TestApp::problem(resp).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (404, Some("photo-not-found")),
                "{p}: the read cache forgot it"
            );
        }
    }
    let deletes = g
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.status == 204)
        .count();
    assert_eq!(deletes, 6);
    let logs = captured_logs();
    assert!(
        logs.lines().any(|l| l.contains("photo_gateway::audit")
            && l.contains("photo deleted")
            && l.contains("/groups/")),
        "an audit line per delete"
    );
}

#[tokio::test]
async fn contacts_teams_and_read_only_views_answer_405_with_their_allow() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let cases = [
        (
            "DELETE",
            format!("/v1.0/me/contacts/{CONTACT_ID}/photo/$value"),
            "GET, PUT, PATCH",
        ),
        (
            "DELETE",
            format!("/v1.0/users/{DEMO}/contacts/{CONTACT_ID}/photo/%24value"),
            "GET, PUT, PATCH",
        ),
        (
            "DELETE",
            format!("/v1.0/teams/{TEAM_ID}/photo/$value"),
            "GET, PUT, PATCH",
        ),
        (
            "DELETE",
            format!("/v1.0/teams/{TEAM_ID}/photo/%24value"),
            "GET, PUT, PATCH",
        ),
        ("PUT", "/v1.0/me/photo".to_owned(), "GET"),
        ("DELETE", "/v1.0/me/photos/96x96/$value".to_owned(), "GET"),
        ("POST", ME.to_owned(), "GET, PUT, PATCH, DELETE"),
    ];
    for (method, path, allow) in cases {
        let resp = app
            .send_raw(method, &path, Some(&token), jpeg(200, 1), "image/jpeg")
            .await;
        let (status, headers, body) = TestApp::problem(resp).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (405, Some("method-not-allowed")),
            "{method} {path}: {body}"
        );
        assert_eq!(headers["allow"], allow, "{method} {path}");
    }
    assert!(
        app.emus.graph.requests().is_empty(),
        "nothing reached Graph"
    );
}

#[tokio::test]
async fn deleting_another_users_photo_needs_an_admin_role_as_graph_says() {
    let app = spawn_app().await;
    let g = &app.emus.graph;
    assert!(g.set_photo(&format!("/users/{MEGAN}"), &jpeg(300, 1), "image/jpeg"));
    assert!(g.set_photo(
        &format!("/users/{PLAIN_USER_ID}"),
        &jpeg(300, 2),
        "image/jpeg"
    ));
    let lee = app.token(PLAIN_USER_UPN);
    let (status, _, body) = TestApp::problem(delete(&app, &user_photo(MEGAN), &lee).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("graph-rejected")),
        "{body}"
    );
    assert_eq!(body["graphError"]["code"], "Authorization_RequestDenied");
    assert!(g.photo_of_user(MEGAN).is_some());
    // Lee's own, by /me or by his object id: no role needed.
    assert_eq!(
        delete(&app, &user_photo(PLAIN_USER_ID), &lee)
            .await
            .status(),
        204
    );
    assert!(g.photo_of_user(PLAIN_USER_ID).is_none());
    // The demo user is a User Administrator.
    assert_eq!(
        delete(&app, &user_photo(MEGAN), &app.token(DEMO))
            .await
            .status(),
        204
    );
    assert!(g.photo_of_user(MEGAN).is_none());
}

#[tokio::test]
async fn deleting_others_photos_needs_a_delete_grant() {
    let app = crate::support::spawn_app_with(|v| {
        v.push(("PHOTO_GATEWAY_CALLER_POLICY".into(), "writer=users".into()));
    })
    .await;
    assert!(
        app.emus
            .graph
            .set_photo(&format!("/users/{MEGAN}"), &jpeg(300, 1), "image/jpeg")
    );
    let writer =
        app.token_with(photo_gateway_emulators::CallerTokenSpec::for_user(DEMO).app("writer"));
    let (status, _, body) = TestApp::problem(delete(&app, &user_photo(MEGAN), &writer).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("caller-not-allowed")),
        "{body}"
    );
    assert!(app.emus.graph.requests().is_empty());
    // One's own photo needs no grant.
    assert!(
        app.emus
            .graph
            .set_photo(&format!("/users/{DEMO}"), &jpeg(300, 2), "image/jpeg")
    );
    assert_eq!(delete(&app, ME, &writer).await.status(), 204);
}
