//! Team photos in the Graph emulator: TeamSettings.ReadWrite.All writes (204, as Teams answers),
//! Team.ReadBasic.All reads, delegated and application alike; a team's photo is its group's.

mod common;
use common::{access_token as token, client, send, start};

use photo_gateway_emulators::directory::{
    DEMO_USER_UPN, GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET, GROUP_ID,
};
use photo_gateway_emulators::teams::{NOT_A_TEAM_GROUP_ID, TEAM_ID, seeded_teams};
use photo_gateway_emulators::{CallerTokenSpec, sample_jpeg};
use serde_json::Value;

async fn error_code(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["innerError"]["request-id"].is_string(),
        "{body}"
    );
    body["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn delegated_team_settings_writes_and_team_read_basic_reads_a_team_photo() {
    let emus = start().await;
    let c = client(&emus);
    let g = emus.graph_url();
    assert_eq!(seeded_teams().len(), 1);
    // The gateway's way: On-Behalf-Of with the team scope.
    let assertion = emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN));
    let scope = format!("{g}/TeamSettings.ReadWrite.All");
    let writer = token(
        &emus,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("requested_token_use", "on_behalf_of"),
            ("assertion", &assertion),
            ("client_id", GATEWAY_CLIENT_ID),
            ("client_secret", GATEWAY_CLIENT_SECRET),
            ("scope", &scope),
        ],
    )
    .await;
    let reader = emus.graph_token(DEMO_USER_UPN, &["Team.ReadBasic.All"]);
    for (i, (method, value)) in [
        ("PUT", "$value"),
        ("PATCH", "%24value"),
        ("PUT", "%24VALUE"),
    ]
    .into_iter()
    .enumerate()
    {
        let photo = sample_jpeg(48, 48, &format!("team {i}"));
        let path = format!("/v1.0/Teams/{TEAM_ID}/photo/{value}");
        let resp = send(&c, method, &format!("{g}{path}"), &writer, photo.clone()).await;
        assert_eq!(resp.status(), 204, "{method} {path}");
        assert!(resp.headers().contains_key("request-id"));
        assert!(resp.bytes().await.unwrap().is_empty());
        assert_eq!(emus.graph.photo_of_team(TEAM_ID).unwrap(), photo);
        // Recorded like every other write.
        let rec = emus.graph.requests().pop().unwrap();
        assert_eq!(
            (
                rec.method.as_str(),
                rec.path.as_str(),
                rec.template.as_str(),
                rec.status
            ),
            (method, path.as_str(), "/teams/{id}/photo/$value", 204)
        );
        assert_eq!(rec.target, Some(format!("/teams/{TEAM_ID}/photo/$value")));
        assert_eq!(rec.bytes, photo.len());
        assert_eq!(rec.scp.as_deref(), Some("TeamSettings.ReadWrite.All"));
        // Read back through the team and through its group: one photo.
        for read in [
            format!("{g}/v1.0/teams/{TEAM_ID}/photo/$value"),
            format!("{g}/v1.0/groups/{GROUP_ID}/photo/$value"),
        ] {
            let token = if read.contains("/teams/") {
                &reader
            } else {
                &emus.graph_token(DEMO_USER_UPN, &["Group.ReadWrite.All"])
            };
            let back = c.get(&read).bearer_auth(token).send().await.unwrap();
            assert_eq!(back.status(), 200, "{read}");
            assert_eq!(back.headers()["content-type"], "image/jpeg");
            assert_eq!(back.bytes().await.unwrap(), photo, "{read}");
        }
    }
    let meta: Value = c
        .get(format!("{g}/v1.0/teams/{TEAM_ID}/photo"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (meta["id"].as_str(), meta["width"].as_u64()),
        (Some("48X48"), Some(48))
    );
    assert_eq!(meta["@odata.mediaContentType"], "image/jpeg");
    let counters = emus.graph.counters();
    assert_eq!(
        counters.count("PUT", "/teams/{id}/photo/$value", 204),
        2,
        "{counters:?}"
    );
    assert_eq!(
        counters.count("GET", "/teams/{id}/photo", 200),
        1,
        "{counters:?}"
    );

    // Reading is not writing; user and group photo scopes do not cover teams.
    for (scopes, what) in [
        (vec!["Team.ReadBasic.All"], "read scope"),
        (
            vec!["ProfilePhoto.ReadWrite.All", "User.ReadWrite.All"],
            "photo scopes",
        ),
    ] {
        let t = emus.graph_token(DEMO_USER_UPN, &scopes);
        let resp = send(
            &c,
            "PUT",
            &format!("{g}/v1.0/teams/{TEAM_ID}/photo/$value"),
            &t,
            sample_jpeg(8, 8, what),
        )
        .await;
        assert_eq!(
            error_code(resp, 403).await,
            "Authorization_RequestDenied",
            "{what}"
        );
    }
    let t = emus.graph_token(DEMO_USER_UPN, &["ProfilePhoto.Read.All"]);
    let resp = c
        .get(format!("{g}/v1.0/teams/{TEAM_ID}/photo/$value"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, 403).await, "Authorization_RequestDenied");
}

#[tokio::test]
async fn app_only_team_photos_and_graphs_refusals() {
    let emus = start().await;
    let c = client(&emus);
    let g = emus.graph_url();
    // The gateway app holds TeamSettings.ReadWrite.All as an application permission.
    let app = token(
        &emus,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", GATEWAY_CLIENT_ID),
            ("client_secret", GATEWAY_CLIENT_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    let url = format!("{g}/v1.0/teams/{TEAM_ID}/photo/$value");
    let photo = sample_jpeg(32, 32, "app");
    let resp = send(&c, "PUT", &url, &app, photo.clone()).await;
    assert_eq!(resp.status(), 204);
    let rec = emus.graph.requests().pop().unwrap();
    assert!(rec.roles.unwrap().contains("TeamSettings.ReadWrite.All"));
    let reader = emus.graph_app_token(&["Team.ReadBasic.All"]);
    let back = c.get(&url).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(back.status(), 200);
    assert_eq!(back.bytes().await.unwrap(), photo);
    let resp = send(&c, "PATCH", &url, &reader, sample_jpeg(8, 8, "no")).await;
    assert_eq!(error_code(resp, 403).await, "Authorization_RequestDenied");

    // No DELETE of a team photo; PUT needs $value.
    let resp = send(&c, "DELETE", &url, &app, Vec::new()).await;
    assert_eq!(error_code(resp, 405).await, "Request_BadRequest");
    let resp = send(
        &c,
        "PUT",
        &format!("{g}/v1.0/teams/{TEAM_ID}/photo"),
        &app,
        sample_jpeg(8, 8, "m"),
    )
    .await;
    assert_eq!(resp.status(), 405);
    assert_eq!(emus.graph.photo_of_team(TEAM_ID).unwrap(), photo);
    // A group without Teams, and an unknown id: Teams' 404.
    for id in [NOT_A_TEAM_GROUP_ID, "00000000-0000-0000-0000-00000000dead"] {
        let resp = send(
            &c,
            "PUT",
            &format!("{g}/v1.0/teams/{id}/photo/$value"),
            &app,
            sample_jpeg(8, 8, id),
        )
        .await;
        assert_eq!(error_code(resp, 404).await, "NotFound", "{id}");
    }
    // Before any photo: 404 ImageNotFound (reset clears photos).
    emus.reset();
    let resp = c.get(&url).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(error_code(resp, 404).await, "ImageNotFound");
}

#[tokio::test]
async fn photo_gets_carry_an_etag_and_if_none_match_is_304() {
    let emus = start().await;
    let photo = photo_gateway_emulators::sample_jpeg(300, 300, "etag");
    let user = photo_gateway_emulators::directory::DEMO_USER_ID;
    assert!(
        emus.graph
            .set_photo(&format!("/users/{user}"), &photo, "image/jpeg")
    );
    let token = emus.graph_token(
        photo_gateway_emulators::directory::DEMO_USER_UPN,
        &["User.Read", "Team.ReadBasic.All"],
    );
    let c = client(&emus);
    let g = emus.graph_url();
    for path in [
        "/v1.0/me/photo/$value".to_owned(),
        "/v1.0/me/photos/96x96/$value".to_owned(),
        format!(
            "/v1.0/teams/{}/photo/$value",
            photo_gateway_emulators::teams::TEAM_ID
        ),
    ] {
        if path.contains("teams") {
            let group = photo_gateway_emulators::directory::GROUP_ID;
            assert!(
                emus.graph
                    .set_photo(&format!("/groups/{group}"), &photo, "image/jpeg")
            );
        }
        let resp = c
            .get(format!("{g}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
        let resp = c
            .get(format!("{g}{path}"))
            .bearer_auth(&token)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 304, "{path}");
        assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
        assert!(resp.bytes().await.unwrap().is_empty());
        let resp = c
            .get(format!("{g}{path}"))
            .bearer_auth(&token)
            .header("if-none-match", "\"other\"")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let list: serde_json::Value = c
        .get(format!("{g}/v1.0/me/photos"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["value"].as_array().unwrap().len(),
        5,
        "48…240 fit a 300 px photo: {list}"
    );
}
