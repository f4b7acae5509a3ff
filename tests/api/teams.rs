//! Issue 13: team photos through the upload flow (PUT and PATCH, both spellings), read back.

use photo_gateway_emulators::teams::{NOT_A_TEAM_GROUP_ID, TEAM_ID};

use crate::support::{DEMO, TestApp, jpeg, spawn_app};

#[tokio::test]
async fn a_teams_photo_is_put_patched_and_read_in_both_spellings() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    for (i, method) in ["PUT", "PATCH"].iter().enumerate() {
        for (j, path) in [
            format!("/v1.0/teams/{TEAM_ID}/photo/$value"),
            format!("/v1.0/TEAMS/{TEAM_ID}/Photo/%24value"),
        ]
        .iter()
        .enumerate()
        {
            let photo = jpeg(400 + i * 10 + j, (i * 2 + j) as u8);
            let resp = app
                .send_raw(method, path, Some(&token), photo.clone(), "image/jpeg")
                .await;
            assert_eq!(
                resp.status(),
                200,
                "{method} {path}: {}",
                resp.text().await.unwrap()
            );
            let receipt: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(receipt["target"], format!("/teams/{TEAM_ID}/photo/$value"));
            assert_eq!(app.emus.graph.photo_of_team(TEAM_ID).unwrap(), photo);
            let resp = app
                .client
                .get(format!("{}{path}", app.address))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(
                resp.bytes().await.unwrap().as_ref(),
                photo,
                "the write refreshed the read"
            );
        }
    }
    let recorded = app.emus.graph.requests();
    assert!(recorded.iter().all(|r| {
        r.scp
            .as_deref()
            .is_some_and(|s| s.contains("TeamSettings.ReadWrite.All"))
    }));
    // A group that is not a team: Graph's 404 passed on.
    let resp = app
        .put_raw(
            &format!("/v1.0/teams/{NOT_A_TEAM_GROUP_ID}/photo/$value"),
            &token,
            jpeg(300, 9),
        )
        .await;
    let (status, _, body) = TestApp::problem(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("graph-rejected")),
        "{body}"
    );
}

#[tokio::test]
async fn team_photos_need_a_teams_grant() {
    let app = crate::support::spawn_app_with(|v| {
        v.push((
            "PHOTO_GATEWAY_CALLER_POLICY".into(),
            "viewer=teams:read".into(),
        ));
    })
    .await;
    assert!(
        app.emus
            .graph
            .set_photo(&format!("/groups/{TEAM_ID}"), &jpeg(300, 1), "image/jpeg")
    );
    let viewer =
        app.token_with(photo_gateway_emulators::CallerTokenSpec::for_user(DEMO).app("viewer"));
    let path = format!("/v1.0/teams/{TEAM_ID}/photo/$value");
    let resp = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, _, body) = TestApp::problem(app.put_raw(&path, &viewer, jpeg(300, 2)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("caller-not-allowed")),
        "{body}"
    );
}
