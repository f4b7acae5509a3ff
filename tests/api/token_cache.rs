//! The On-Behalf-Of cache: single flight, one entry per (assertion, scope), entries expire by
//! their own lifetime.

use std::time::Duration;

use photo_gateway_emulators::directory::GROUP_ID;

use crate::support::{DEMO, ME, MEGAN, group_photo, jpeg, spawn_app, spawn_app_with};

#[tokio::test]
async fn fifty_concurrent_uploads_from_one_user_cause_one_token_request() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let uploads = (0..50).map(|i| {
        let app = &app;
        let token = token.clone();
        async move {
            app.put_raw(ME, &token, jpeg(4096, i as u8))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(uploads).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let c = app.emus.entra.counters();
    assert_eq!(
        c.by_grant_type.get("on_behalf_of").copied(),
        Some(1),
        "{c:?}"
    );
    assert_eq!(app.emus.graph.requests().len(), 50);
}

#[tokio::test]
async fn different_users_and_scopes_get_separate_entries() {
    let app = spawn_app().await;
    let adele = app.token(DEMO);
    let megan = app.token(MEGAN);
    for _ in 0..3 {
        assert_eq!(app.put_raw(ME, &adele, jpeg(200, 1)).await.status(), 200);
        assert_eq!(app.put_raw(ME, &megan, jpeg(200, 2)).await.status(), 200);
        let group = group_photo(GROUP_ID);
        assert_eq!(
            app.put_raw(&group, &adele, jpeg(200, 3)).await.status(),
            200
        );
    }
    let c = app.emus.entra.counters();
    assert_eq!(
        c.by_grant_type.get("on_behalf_of").copied(),
        Some(3),
        "adele×me, megan×me, adele×group: {c:?}"
    );
    let scopes: Vec<&String> = c.by_scope.keys().collect();
    assert!(
        scopes.iter().any(|s| s.ends_with("/User.ReadWrite")),
        "{scopes:?}"
    );
    assert!(
        scopes.iter().any(|s| s.ends_with("/Group.ReadWrite.All")),
        "{scopes:?}"
    );
}

#[tokio::test]
async fn an_entry_expires_by_its_own_lifetime() {
    // Tokens live 3 s; the gateway drops them 1 s early, so after ~2 s a new exchange happens.
    let app =
        spawn_app_with(|v| v.push(("PHOTO_GATEWAY_TOKEN_EXPIRY_MARGIN_SECS".into(), "1".into())))
            .await;
    app.emus.entra.set_token_lifetime(3);
    let token = app.token(DEMO);
    assert_eq!(app.put_raw(ME, &token, jpeg(200, 1)).await.status(), 200);
    assert_eq!(app.put_raw(ME, &token, jpeg(200, 1)).await.status(), 200);
    assert_eq!(app.obo_exchanges(), 1);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(app.put_raw(ME, &token, jpeg(200, 1)).await.status(), 200);
    assert_eq!(app.obo_exchanges(), 2);
}
