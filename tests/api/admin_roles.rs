//! Issue 13: Graph lets a signed-in user change another user's photo only with an admin role
//! (User, People or Global Administrator). The gateway passes Graph's refusal on as
//! `graph-rejected` with Graph's status and code; the user's own photo and an admin's writes pass.

use photo_gateway_emulators::roles::{PLAIN_USER_ID, PLAIN_USER_UPN};

use crate::support::{
    DEMO, ME, MEGAN, TestApp, assert_insufficient_scope, jpeg, spawn_app, user_photo,
};

#[tokio::test]
async fn a_plain_users_write_of_another_users_photo_is_graphs_403() {
    let app = spawn_app().await;
    let lee = app.token(PLAIN_USER_UPN);
    let before = jpeg(300, 9);
    assert!(
        app.emus
            .graph
            .set_photo(&format!("/users/{MEGAN}"), &before, "image/jpeg")
    );

    for (i, path) in [
        user_photo(MEGAN),
        user_photo("5b0f9a8e-0000-4c11-8a01-000000000102"),
    ]
    .iter()
    .enumerate()
    {
        let resp = app.put_raw(path, &lee, jpeg(200, i as u8)).await;
        let (status, headers, body) = TestApp::problem(resp).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("graph-rejected")),
            "{path}: {body}"
        );
        // A 403 is an RFC 6750 authorization failure, whoever refused.
        assert_insufficient_scope(&headers);
        assert_eq!(body["upstream"], "graph", "{body}");
        assert_eq!(
            body["graphError"]["code"], "Authorization_RequestDenied",
            "{path}: {body}"
        );
        assert!(body["graphError"]["requestId"].as_str().is_some(), "{body}");
    }
    // Graph saw the attempts, refused them, and Megan's photo is what it was.
    let refused = app
        .emus
        .graph
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.status == 403)
        .count();
    assert_eq!(refused, 2);
    assert_eq!(app.emus.graph.photo_of_user(MEGAN).unwrap(), before);

    // Lee's own photo, by /me and by his own object id: no role needed.
    for (i, path) in [ME.to_owned(), user_photo(PLAIN_USER_ID)]
        .iter()
        .enumerate()
    {
        let photo = jpeg(200, 20 + i as u8);
        let resp = app.put_raw(path, &lee, photo.clone()).await;
        assert_eq!(resp.status(), 200, "{path}: {}", resp.text().await.unwrap());
        assert_eq!(app.emus.graph.photo_of_user(PLAIN_USER_ID).unwrap(), photo);
    }

    // The demo user is a User Administrator: the same write of Megan's photo goes through.
    let photo = jpeg(200, 30);
    let resp = app
        .put_raw(&user_photo(MEGAN), &app.token(DEMO), photo.clone())
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(app.emus.graph.photo_of_user(MEGAN).unwrap(), photo);
}
