//! The emulators' own rules: they must answer like Entra ID and Graph, or the gateway's tests
//! would prove nothing.

mod common;
use common::{claims_of, client, put, start};

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use photo_gateway_emulators::directory::{
    CONTACT_FOLDER_ID, CONTACT_ID, DEMO_USER_ID, DEMO_USER_UPN, FOLDER_CONTACT_ID,
    GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET, GROUP_ID, GUEST_USER_UPN,
};
use photo_gateway_emulators::{CallerTokenSpec, Emulators, FaultRule, TokenErrorKind, sample_jpeg};
use serde_json::{Value, json};

/// Checks Graph's error shape and headers; returns `error.code`.
async fn graph_error(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status);
    let rid = resp.headers()["request-id"].to_str().unwrap().to_owned();
    let crid = resp.headers()["client-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    let inner = &body["error"]["innerError"];
    assert_eq!(inner["request-id"], rid.as_str(), "{body}");
    assert_eq!(inner["client-request-id"], crid.as_str(), "{body}");
    assert!(
        inner["date"].as_str().is_some_and(|d| d.len() == 19),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["error"]["code"].as_str().unwrap().to_owned()
}

fn obo_form(assertion: &str, scope: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
        ),
        ("requested_token_use", "on_behalf_of".into()),
        ("client_id", GATEWAY_CLIENT_ID.into()),
        ("assertion", assertion.into()),
        ("scope", scope.into()),
    ]
}

async fn token_request(emus: &Emulators, form: &[(&str, String)]) -> (u16, Value) {
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        emus.entra_url(),
        emus.tenant_id()
    );
    let resp = client(emus).post(url).form(form).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn with_secret(mut form: Vec<(&'static str, String)>, secret: &str) -> Vec<(&'static str, String)> {
    form.push(("client_secret", secret.into()));
    form
}

/// Entra's error shape: the AADSTS code first, and the bookkeeping fields.
fn assert_entra_error(body: &Value, error: &str, code: u64) {
    assert_eq!(body["error"], error, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with(&format!("AADSTS{code}:")),
        "{body}"
    );
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    for field in ["trace_id", "correlation_id", "timestamp"] {
        assert!(
            body[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field} in {body}"
        );
    }
}

#[tokio::test]
async fn graph_stores_photos_on_every_path_and_reads_them_back() {
    let emus = start().await;
    let c = client(&emus);
    let g = emus.graph_url();
    let token = emus.graph_token(
        DEMO_USER_UPN,
        &[
            "User.ReadWrite.All",
            "Group.ReadWrite.All",
            "Contacts.ReadWrite",
        ],
    );
    let guest = GUEST_USER_UPN.replace('#', "%23");
    let paths = [
        "/v1.0/me/photo/$value".to_string(),
        format!("/v1.0/users/{guest}/photo/%24value"),
        format!("/v1.0/GROUPS/{GROUP_ID}/photo/$value"),
        format!("/v1.0/me/contacts/{CONTACT_ID}/photo/$value"),
        format!("/v1.0/users/{DEMO_USER_UPN}/contacts/{CONTACT_ID}/photo/$value"),
        format!(
            "/v1.0/me/contactFolders/{CONTACT_FOLDER_ID}/contacts/{FOLDER_CONTACT_ID}/photo/$value"
        ),
        format!(
            "/v1.0/users/{DEMO_USER_ID}/contactfolders/{CONTACT_FOLDER_ID}/contacts/{FOLDER_CONTACT_ID}/photo/$value"
        ),
    ];
    for (i, path) in paths.iter().enumerate() {
        for method in ["PUT", "PATCH"] {
            let photo = sample_jpeg(64, 48, &format!("{method}{i}"));
            let resp = c
                .request(method.parse().unwrap(), format!("{g}{path}"))
                .bearer_auth(&token)
                .header("content-type", "image/jpeg")
                .header("client-request-id", "my-id-1")
                .body(photo.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{method} {path}");
            assert_eq!(resp.headers()["client-request-id"], "my-id-1");
            assert!(uuid::Uuid::parse_str(resp.headers()["request-id"].to_str().unwrap()).is_ok());
            assert!(
                resp.bytes().await.unwrap().is_empty(),
                "success has an empty body"
            );
            let back = c
                .get(format!("{g}{path}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(back.status(), 200);
            assert_eq!(back.headers()["content-type"], "image/jpeg");
            assert_eq!(back.bytes().await.unwrap(), photo, "{method} {path}");
            let rec = emus.graph.requests().pop().unwrap();
            assert_eq!(
                (rec.method.as_str(), rec.path.as_str(), rec.status),
                (method, path.as_str(), 200)
            );
            assert_eq!(rec.bytes, photo.len());
            assert_eq!(
                rec.sha256,
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&photo))
            );
            assert_eq!(rec.client_request_id.as_deref(), Some("my-id-1"));
            assert_eq!(rec.oid.as_deref(), Some(DEMO_USER_ID));
        }
    }
    // Both contact path forms name the same contact; the guest UPN names the guest.
    assert!(emus.graph.photo_of_user(GUEST_USER_UPN).is_some());
    assert!(
        emus.graph
            .photo_of_contact(DEMO_USER_UPN, Some(CONTACT_FOLDER_ID), FOLDER_CONTACT_ID)
            .is_some()
    );
    let meta: Value = c
        .get(format!("{g}/v1.0/me/photo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            meta["id"].as_str(),
            meta["width"].as_u64(),
            meta["height"].as_u64()
        ),
        (Some("64X48"), Some(64), Some(48))
    );
    assert_eq!(meta["@odata.mediaContentType"], "image/jpeg");

    // Delete exists for users and groups only.
    let del = c
        .delete(format!("{g}/v1.0/me/photo/$value"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    let gone = c
        .get(format!("{g}/v1.0/me/photo/$value"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(graph_error(gone, 404).await, "ImageNotFound");
    let meta: Value = c
        .get(format!("{g}/v1.0/me/photo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            meta["id"].as_str(),
            meta["@odata.mediaContentType"].as_str()
        ),
        (Some("1X1"), Some("image/gif"))
    );
    let del = c
        .delete(format!("{g}/v1.0/me/contacts/{CONTACT_ID}/photo/$value"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 405);
}

#[tokio::test]
async fn graph_refuses_a_scope_that_does_not_cover_the_operation_with_403() {
    let emus = start().await;
    let c = client(&emus);
    let g = emus.graph_url();
    let contacts_only = emus.graph_token(DEMO_USER_UPN, &["Contacts.ReadWrite"]);
    let resp = put(
        &c,
        &format!("{g}/v1.0/me/photo/$value"),
        &contacts_only,
        sample_jpeg(8, 8, "a"),
    )
    .await;
    assert_eq!(graph_error(resp, 403).await, "Authorization_RequestDenied");
    // User.ReadWrite covers the user's own object, not another user's.
    let own = emus.graph_token(DEMO_USER_UPN, &["User.ReadWrite"]);
    let resp = put(
        &c,
        &format!("{g}/v1.0/users/{DEMO_USER_ID}/photo/$value"),
        &own,
        sample_jpeg(8, 8, "b"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = put(
        &c,
        &format!("{g}/v1.0/users/megan.bowen@contoso.onmicrosoft.com/photo/$value"),
        &own,
        sample_jpeg(8, 8, "c"),
    )
    .await;
    assert_eq!(graph_error(resp, 403).await, "Authorization_RequestDenied");
    let resp = put(
        &c,
        &format!("{g}/v1.0/groups/{GROUP_ID}/photo/$value"),
        &own,
        sample_jpeg(8, 8, "d"),
    )
    .await;
    assert_eq!(graph_error(resp, 403).await, "Authorization_RequestDenied");
    // A read scope reads but does not write.
    let read = emus.graph_token(DEMO_USER_UPN, &["User.Read"]);
    let resp = c
        .get(format!("{g}/v1.0/me/photo"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = put(
        &c,
        &format!("{g}/v1.0/me/photo/$value"),
        &read,
        sample_jpeg(8, 8, "e"),
    )
    .await;
    assert_eq!(graph_error(resp, 403).await, "Authorization_RequestDenied");
    let counters = emus.graph.counters();
    assert_eq!(
        counters.count("PUT", "/users/{id}/photo/$value", 403),
        1,
        "{counters:?}"
    );
    assert_eq!(
        counters.count("PUT", "/me/photo/$value", 403),
        2,
        "{counters:?}"
    );
}

#[tokio::test]
async fn graph_refuses_bad_tokens_with_401_invalid_authentication_token() {
    let emus = start().await;
    let c = client(&emus);
    let url = format!("{}/v1.0/me/photo/$value", emus.graph_url());
    let good = emus.graph_token(DEMO_USER_UPN, &["User.ReadWrite"]);
    // Tampered: claims changed after signing.
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut claims = claims_of(&good);
    claims["scp"] = json!("User.ReadWrite.All Group.ReadWrite.All");
    use base64::Engine as _;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims).unwrap());
    let tampered = parts.join(".");
    let caller_token = emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN)); // audience: the gateway
    let mut expired_claims = claims_of(&good);
    expired_claims["exp"] = json!(expired_claims["iat"].as_i64().unwrap() - 10);
    let expired = emus.sign_jwt(Header::new(Algorithm::RS256), &expired_claims);
    for (what, token) in [
        ("tampered", tampered.as_str()),
        ("wrong audience", &caller_token),
        ("expired", &expired),
        ("garbage", "abc"),
    ] {
        let resp = put(&c, &url, token, sample_jpeg(8, 8, what)).await;
        assert!(
            resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
            "{what}"
        );
        assert_eq!(
            graph_error(resp, 401).await,
            "InvalidAuthenticationToken",
            "{what}"
        );
    }
    let resp = c
        .put(&url)
        .header("content-type", "image/jpeg")
        .body(vec![0xFF, 0xD8])
        .send()
        .await
        .unwrap();
    assert_eq!(
        graph_error(resp, 401).await,
        "InvalidAuthenticationToken",
        "no token"
    );
    assert!(emus.graph.photo_of_user(DEMO_USER_UPN).is_none());
}

#[tokio::test]
async fn graph_answers_404_for_unknown_objects_and_enforces_body_rules() {
    let emus = start().await;
    let c = client(&emus);
    let g = emus.graph_url();
    let token = emus.graph_token(
        DEMO_USER_UPN,
        &[
            "User.ReadWrite.All",
            "Group.ReadWrite.All",
            "Contacts.ReadWrite",
        ],
    );
    let unknown_user = put(
        &c,
        &format!("{g}/v1.0/users/nobody@contoso.onmicrosoft.com/photo/$value"),
        &token,
        sample_jpeg(8, 8, ""),
    )
    .await;
    assert_eq!(
        graph_error(unknown_user, 404).await,
        "Request_ResourceNotFound"
    );
    let unknown_group = put(
        &c,
        &format!("{g}/v1.0/groups/{}/photo/$value", uuid::Uuid::new_v4()),
        &token,
        sample_jpeg(8, 8, ""),
    )
    .await;
    assert_eq!(
        graph_error(unknown_group, 404).await,
        "Request_ResourceNotFound"
    );
    let unknown_contact = put(
        &c,
        &format!("{g}/v1.0/me/contacts/AAMkNope=/photo/$value"),
        &token,
        sample_jpeg(8, 8, ""),
    )
    .await;
    assert_eq!(graph_error(unknown_contact, 404).await, "ErrorItemNotFound");
    let wrong_folder = put(
        &c,
        &format!(
            "{g}/v1.0/me/contactFolders/{CONTACT_FOLDER_ID}/contacts/{CONTACT_ID}/photo/$value"
        ),
        &token,
        sample_jpeg(8, 8, ""),
    )
    .await;
    assert_eq!(graph_error(wrong_folder, 404).await, "ErrorItemNotFound");

    let me = format!("{g}/v1.0/me/photo/$value");
    let limit = 4_194_304usize;
    let resp = put(&c, &me, &token, vec![0xAB; limit - 1]).await;
    assert_eq!(resp.status(), 200, "one byte under the limit");
    let resp = put(&c, &me, &token, vec![0xAB; limit]).await;
    assert_eq!(graph_error(resp, 413).await, "RequestEntityTooLarge");
    // Chunked (no Content-Length): stopped while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..5).map(|_| Ok(vec![1u8; 1024 * 1024])).collect();
    let resp = c
        .put(&me)
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(graph_error(resp, 413).await, "RequestEntityTooLarge");
    assert_eq!(
        emus.graph.photo_of_user(DEMO_USER_ID).unwrap().len(),
        limit - 1,
        "the stored photo is unchanged"
    );

    let resp = c
        .put(&me)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(graph_error(resp, 415).await, "UnsupportedMediaType");
    let resp = c
        .put(&me)
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(sample_jpeg(8, 8, "o"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "octet-stream is accepted, as the SDKs send it"
    );
    let resp = c
        .put(&me)
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .header("content-encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(graph_error(resp, 400).await, "BadRequest");
}

async fn get(c: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    c.get(url)
        .bearer_auth(token)
        .header("client-request-id", "lookup-1")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn graph_reads_a_user_by_object_id_or_upn_with_select() {
    let emus = start().await;
    let c = client(&emus);
    let g = emus.graph_url();
    let megan = "megan.bowen@contoso.onmicrosoft.com";
    let megan_id = "5b0f9a8e-0000-4c11-8a01-000000000102";
    let token = emus.graph_token(DEMO_USER_UPN, &["User.ReadWrite.All"]);
    for name in [megan, &megan.to_uppercase(), megan_id] {
        let resp = get(
            &c,
            &format!("{g}/v1.0/users/{name}?$select=id,userPrincipalName"),
            &token,
        )
        .await;
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.headers()["client-request-id"], "lookup-1");
        assert!(uuid::Uuid::parse_str(resp.headers()["request-id"].to_str().unwrap()).is_ok());
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            json!({
                "@odata.context": format!("{g}/v1.0/$metadata#users(id,userPrincipalName)/$entity"),
                "id": megan_id,
                "userPrincipalName": megan,
            }),
            "{name}"
        );
    }
    // `%24select` is `$select`; one property is one property.
    let body: Value = get(&c, &format!("{g}/v1.0/users/{megan}?%24select=id"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        json!({"@odata.context": format!("{g}/v1.0/$metadata#users(id)/$entity"), "id": megan_id})
    );
    // Without $select: Graph's default properties.
    let body: Value = get(&c, &format!("{g}/v1.0/users/{megan_id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["@odata.context"],
        format!("{g}/v1.0/$metadata#users/$entity")
    );
    assert_eq!(body["displayName"], "Megan Bowen");
    assert_eq!(body["userPrincipalName"], megan);
    assert_eq!(body["businessPhones"], json!([]));
    assert!(body["mail"].is_null(), "{body}");
    // The guest's `#` travels encoded.
    let guest = GUEST_USER_UPN.replace('#', "%23");
    let body: Value = get(&c, &format!("{g}/v1.0/users/{guest}?$select=id"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["id"], "5b0f9a8e-0000-4c11-8a01-000000000105");
    let resp = get(
        &c,
        &format!("{g}/v1.0/users/{megan}?$select=id,shoeSize"),
        &token,
    )
    .await;
    assert_eq!(graph_error(resp, 400).await, "Request_BadRequest");
    let counters = emus.graph.counters();
    assert_eq!(counters.count("GET", "/users/{id}", 200), 6, "{counters:?}");
    assert_eq!(counters.count("GET", "/users/{id}", 400), 1, "{counters:?}");
}

#[tokio::test]
async fn graph_refuses_user_reads_without_a_read_permission_and_404s_unknown_users() {
    let emus = start().await;
    let c = client(&emus);
    let g = emus.graph_url();
    let megan = format!("{g}/v1.0/users/megan.bowen@contoso.onmicrosoft.com?$select=id");
    let nobody = format!("{g}/v1.0/users/nobody@contoso.onmicrosoft.com?$select=id");
    let own = format!("{g}/v1.0/users/{DEMO_USER_UPN}?$select=id");
    for scope in [
        "User.Read.All",
        "User.ReadWrite.All",
        "User.ReadBasic.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ] {
        let token = emus.graph_token(DEMO_USER_UPN, &[scope]);
        assert_eq!(get(&c, &megan, &token).await.status(), 200, "{scope}");
        let resp = get(&c, &nobody, &token).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 404, "{scope}");
        assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
        assert_eq!(
            body["error"]["message"],
            "Resource 'nobody@contoso.onmicrosoft.com' does not exist or one of its queried reference-property objects are not present."
        );
    }
    for scope in [
        "ProfilePhoto.ReadWrite.All",
        "Contacts.ReadWrite",
        "User.Read",
        "User.ReadWrite",
    ] {
        let token = emus.graph_token(DEMO_USER_UPN, &[scope]);
        for url in [&megan, &nobody] {
            let resp = get(&c, url, &token).await;
            assert_eq!(resp.status(), 403, "{scope} {url}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
            assert_eq!(
                body["error"]["message"],
                "Insufficient privileges to complete the operation."
            );
        }
    }
    // The signed-in user's own record, by UPN or object id, with User.Read or User.ReadWrite.
    for scope in ["User.Read", "User.ReadWrite"] {
        let token = emus.graph_token(DEMO_USER_UPN, &[scope]);
        assert_eq!(get(&c, &own, &token).await.status(), 200, "{scope}");
        let by_id = format!("{g}/v1.0/users/{DEMO_USER_ID}?$select=id");
        assert_eq!(get(&c, &by_id, &token).await.status(), 200, "{scope}");
    }
    // The same token checks as the photo endpoints.
    let resp = c.get(&megan).send().await.unwrap();
    assert_eq!(graph_error(resp, 401).await, "InvalidAuthenticationToken");
    let resp = get(&c, &megan, "not-a-token").await;
    assert_eq!(graph_error(resp, 401).await, "InvalidAuthenticationToken");
    let token = emus.graph_token(DEMO_USER_UPN, &["User.ReadWrite.All"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    emus.graph.revoke_tokens_issued_before_now();
    let resp = get(&c, &megan, &token).await;
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_claims")
    );
    // Only reads.
    let fresh = emus.graph_token(DEMO_USER_UPN, &["User.ReadWrite.All"]);
    let resp = c.delete(&megan).bearer_auth(&fresh).send().await.unwrap();
    assert_eq!(graph_error(resp, 405).await, "Request_BadRequest");
    let counters = emus.graph.counters();
    assert_eq!(counters.count("GET", "/users/{id}", 403), 8, "{counters:?}");
    assert_eq!(counters.count("GET", "/users/{id}", 401), 3, "{counters:?}");
    assert_eq!(
        counters.count("DELETE", "/users/{id}", 405),
        1,
        "{counters:?}"
    );
    // Requests are recorded under their template when a fault answers them too.
    emus.graph.add_fault(
        FaultRule::status(503)
            .method("GET")
            .path_prefix("/v1.0/users")
            .times(1),
    );
    assert_eq!(get(&c, &megan, &fresh).await.status(), 503);
    assert_eq!(emus.graph.counters().count("GET", "/users/{id}", 503), 1);
}

#[tokio::test]
async fn discovery_documents_have_distinct_issuers_and_rotation_keeps_the_previous_key() {
    let emus = start().await;
    let c = client(&emus);
    let (e, t) = (emus.entra_url(), emus.tenant_id().to_owned());
    let v2: Value = c
        .get(format!("{e}/{t}/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let v1: Value = c
        .get(format!("{e}/{t}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v2["issuer"], format!("{e}/{t}/v2.0"));
    assert_eq!(v1["issuer"], format!("{e}/{t}/"));
    assert_eq!(v2["token_endpoint"], format!("{e}/{t}/oauth2/v2.0/token"));
    assert_eq!(v2["jwks_uri"], format!("{e}/{t}/discovery/v2.0/keys"));
    assert_eq!(v1["jwks_uri"], format!("{e}/{t}/discovery/keys"));
    let bad = c
        .get(format!(
            "{e}/{}/v2.0/.well-known/openid-configuration",
            uuid::Uuid::new_v4()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(
        bad.json::<Value>().await.unwrap()["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS90002:")
    );

    let jwks = |url: String| {
        let c = c.clone();
        async move {
            c.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let keys = jwks(format!("{e}/{t}/discovery/v2.0/keys")).await;
    let old_kid = emus.current_kid();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    let k = &keys["keys"][0];
    assert_eq!(
        (k["kid"].as_str(), k["kty"].as_str(), k["use"].as_str()),
        (Some(old_kid.as_str()), Some("RSA"), Some("sig"))
    );
    assert!(k.get("alg").is_none(), "Entra publishes no alg");
    let old_token = emus.graph_token(DEMO_USER_UPN, &["User.ReadWrite"]);

    let new_kid = emus.entra.rotate_keys().unwrap();
    assert_ne!(new_kid, old_kid);
    let keys = jwks(format!("{e}/{t}/discovery/keys")).await;
    let kids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [new_kid.as_str(), old_kid.as_str()],
        "new key first, previous still published"
    );
    let new_token = emus.graph_token(DEMO_USER_UPN, &["User.ReadWrite"]);
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .unwrap()
            .kid
            .as_deref(),
        Some(new_kid.as_str())
    );
    for token in [old_token, new_token] {
        let resp = put(
            &c,
            &format!("{}/v1.0/me/photo/$value", emus.graph_url()),
            &token,
            sample_jpeg(8, 8, "k"),
        )
        .await;
        assert_eq!(resp.status(), 200);
    }
    let counters = emus.entra.counters();
    assert_eq!(
        (counters.discovery, counters.jwks),
        (2, 2),
        "served documents and key sets: {counters:?}"
    );
}

#[tokio::test]
async fn obo_answers_like_entra_and_its_graph_token_works_on_graph() {
    let emus = start().await;
    let g = emus.graph_url();
    let assertion = emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN));
    let scope = format!("{g}/User.ReadWrite");
    let (status, body) = token_request(
        &emus,
        &with_secret(obo_form(&assertion, &scope), GATEWAY_CLIENT_SECRET),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], scope.as_str());
    assert_eq!(
        (body["expires_in"].as_i64(), body["ext_expires_in"].as_i64()),
        (Some(3599), Some(3599))
    );
    let graph_token = body["access_token"].as_str().unwrap();
    let claims = claims_of(graph_token);
    assert_eq!(claims["aud"], g.as_str());
    assert_eq!(
        claims["iss"],
        format!("{}/{}/", emus.entra_url(), emus.tenant_id())
    );
    assert_eq!(claims["scp"], "User.ReadWrite");
    assert_eq!(
        (claims["oid"].as_str(), claims["appid"].as_str()),
        (Some(DEMO_USER_ID), Some(GATEWAY_CLIENT_ID))
    );
    assert!(claims.get("idtyp").is_none());
    let c = client(&emus);
    let resp = put(
        &c,
        &format!("{g}/v1.0/me/photo/$value"),
        graph_token,
        sample_jpeg(8, 8, "obo"),
    )
    .await;
    assert_eq!(resp.status(), 200);

    // `.default` grants every consented permission; a v1 assertion (App ID URI audience) works too.
    let v1 = emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN).version(1));
    assert_eq!(claims_of(&v1)["aud"], format!("api://{GATEWAY_CLIENT_ID}"));
    let (status, body) = token_request(
        &emus,
        &with_secret(
            obo_form(&v1, "https://graph.microsoft.com/.default"),
            GATEWAY_CLIENT_SECRET,
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let scp = claims_of(body["access_token"].as_str().unwrap())["scp"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        scp,
        "User.ReadWrite User.ReadWrite.All Group.ReadWrite.All Contacts.ReadWrite ProfilePhoto.ReadWrite.All TeamSettings.ReadWrite.All Team.ReadBasic.All User.Read ProfilePhoto.Read.All Contacts.Read"
    );

    // Short-lived tokens on demand.
    emus.entra.set_token_lifetime(5);
    let (_, body) = token_request(
        &emus,
        &with_secret(obo_form(&assertion, &scope), GATEWAY_CLIENT_SECRET),
    )
    .await;
    assert_eq!(body["expires_in"], 5);

    let counters = emus.entra.counters();
    assert_eq!(counters.token_requests, 3);
    assert_eq!(counters.by_grant_type.get("on_behalf_of"), Some(&3));
    assert_eq!(counters.by_scope.get(&scope), Some(&2));
    assert_eq!(counters.by_user.get(DEMO_USER_UPN), Some(&3));
    assert_eq!(counters.by_status.get(&200), Some(&3));
}

/// What a real MSAL client needs from an On-Behalf-Of answer, as Entra gives it: `client_info`
/// (its cache's account key) only when asked for, a `refresh_token`, and a signed `id_token` for
/// the calling app when `openid` is in the scope.
#[tokio::test]
async fn obo_answer_carries_client_info_refresh_and_id_tokens_as_msal_needs() {
    use base64::Engine as _;
    let emus = start().await;
    let g = emus.graph_url();
    let assertion = emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN));

    // Without client_info=1 and openid: no client_info, no id_token; a refresh token all the same.
    let scope = format!("{g}/User.ReadWrite");
    let (status, body) = token_request(
        &emus,
        &with_secret(obo_form(&assertion, &scope), GATEWAY_CLIENT_SECRET),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("client_info").is_none(), "{body}");
    assert!(body.get("id_token").is_none(), "{body}");
    assert!(
        body["refresh_token"].as_str().is_some_and(|r| r.len() > 20),
        "{body}"
    );

    // As msal-node asks: client_info=1 and the OIDC scopes next to the Graph one.
    let mut form = with_secret(
        obo_form(
            &assertion,
            &format!("{scope} openid profile offline_access"),
        ),
        GATEWAY_CLIENT_SECRET,
    );
    form.push(("client_info", "1".into()));
    form.push(("nonce", "n-0S6_WzA2Mj".into()));
    let (status, body) = token_request(&emus, &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], scope.as_str(), "OIDC scopes are not echoed");
    let info: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body["client_info"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        info,
        json!({"uid": DEMO_USER_ID, "utid": emus.tenant_id()}),
        "{body}"
    );
    let second = token_request(&emus, &form).await.1;
    assert_ne!(
        second["refresh_token"], body["refresh_token"],
        "refresh tokens are not reused"
    );

    // The id_token: signed by the tenant's published key, for the calling app.
    let id_token = body["id_token"].as_str().unwrap();
    let c = client(&emus);
    let jwks: jsonwebtoken::jwk::JwkSet = c
        .get(format!(
            "{}/{}/discovery/v2.0/keys",
            emus.entra_url(),
            emus.tenant_id()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(id_token).unwrap().kid.unwrap();
    let jwk = jwks.find(&kid).expect("id_token key is in the JWKS");
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_audience(&[GATEWAY_CLIENT_ID]);
    validation.set_issuer(&[format!("{}/{}/v2.0", emus.entra_url(), emus.tenant_id())]);
    let claims = jsonwebtoken::decode::<Value>(
        id_token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .expect("a valid id_token")
    .claims;
    assert_eq!(claims["oid"], DEMO_USER_ID, "{claims}");
    assert_eq!(claims["tid"], emus.tenant_id(), "{claims}");
    assert_eq!(claims["preferred_username"], DEMO_USER_UPN, "{claims}");
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj", "{claims}");
    assert_eq!(claims["ver"], "2.0", "{claims}");
    assert!(
        claims["sub"]
            .as_str()
            .is_some_and(|s| !s.is_empty() && s != DEMO_USER_ID),
        "pairwise sub: {claims}"
    );
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(exp > iat, "{claims}");
    assert!(
        claims.get("scp").is_none(),
        "an id_token is no access token"
    );

    // client_info=0 or anything else: none.
    let mut form = with_secret(obo_form(&assertion, &scope), GATEWAY_CLIENT_SECRET);
    form.push(("client_info", "0".into()));
    let body = token_request(&emus, &form).await.1;
    assert!(body.get("client_info").is_none(), "{body}");

    // Client credentials: no user, so no client_info, id_token or refresh token.
    let mut form = vec![
        ("grant_type", "client_credentials".to_string()),
        ("client_id", GATEWAY_CLIENT_ID.into()),
        ("client_secret", GATEWAY_CLIENT_SECRET.into()),
        ("scope", "https://graph.microsoft.com/.default".into()),
    ];
    form.push(("client_info", "1".into()));
    let (status, body) = token_request(&emus, &form).await;
    assert_eq!(status, 200, "{body}");
    for field in ["client_info", "id_token", "refresh_token"] {
        assert!(body.get(field).is_none(), "{field} in {body}");
    }
}

#[tokio::test]
async fn token_endpoint_errors_carry_entra_codes() {
    let emus = start().await;
    let g = emus.graph_url();
    let scope = format!("{g}/User.ReadWrite");
    let assertion = emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN));

    let resp = client(&emus)
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            emus.entra_url(),
            emus.tenant_id()
        ))
        .form(&with_secret(obo_form(&assertion, &scope), "wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_entra_error(&resp.json().await.unwrap(), "invalid_client", 7000215);

    let expired = emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN).ttl_secs(-60));
    let (status, body) = token_request(
        &emus,
        &with_secret(obo_form(&expired, &scope), GATEWAY_CLIENT_SECRET),
    )
    .await;
    assert_eq!(status, 400);
    assert_entra_error(&body, "invalid_grant", 500133);

    let other_aud =
        emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN).audience("api://someone-else"));
    let (_, body) = token_request(
        &emus,
        &with_secret(obo_form(&other_aud, &scope), GATEWAY_CLIENT_SECRET),
    )
    .await;
    assert_entra_error(&body, "invalid_grant", 500131);

    let mut forged = assertion.clone();
    forged.push('x');
    let (_, body) = token_request(
        &emus,
        &with_secret(obo_form(&forged, &scope), GATEWAY_CLIENT_SECRET),
    )
    .await;
    assert_entra_error(&body, "invalid_grant", 50013);

    let app_only =
        emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN).app_only(&["Photos.Write"]));
    let (_, body) = token_request(
        &emus,
        &with_secret(obo_form(&app_only, &scope), GATEWAY_CLIENT_SECRET),
    )
    .await;
    assert_entra_error(&body, "invalid_grant", 50013);

    let (status, body) = token_request(
        &emus,
        &with_secret(
            obo_form(&assertion, &format!("{g}/Nonsense.Scope")),
            GATEWAY_CLIENT_SECRET,
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert_entra_error(&body, "invalid_scope", 70011);

    let wrong_tenant = client(&emus)
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            emus.entra_url(),
            uuid::Uuid::new_v4()
        ))
        .form(&with_secret(
            obo_form(&assertion, &scope),
            GATEWAY_CLIENT_SECRET,
        ))
        .send()
        .await
        .unwrap();
    assert_entra_error(
        &wrong_tenant.json().await.unwrap(),
        "invalid_request",
        90002,
    );
}

#[tokio::test]
async fn per_user_consent_and_mfa_errors_are_injected_through_the_control_api() {
    let emus = start().await;
    let c = client(&emus);
    let scope = format!("{}/User.ReadWrite", emus.graph_url());
    let form = with_secret(
        obo_form(
            &emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN)),
            &scope,
        ),
        GATEWAY_CLIENT_SECRET,
    );
    let other = with_secret(
        obo_form(
            &emus.caller_token(&CallerTokenSpec::for_user("lee.gu@contoso.onmicrosoft.com")),
            &scope,
        ),
        GATEWAY_CLIENT_SECRET,
    );
    let control = format!(
        "{}/_emulator/users/{}/token-error",
        emus.entra_url(),
        DEMO_USER_UPN
    );

    let resp = c
        .post(&control)
        .json(&json!({"kind": "consent_required"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, body) = token_request(&emus, &form).await;
    assert_eq!(status, 400);
    assert_entra_error(&body, "invalid_grant", 65001);
    assert_eq!(body["suberror"], "consent_required");
    assert_eq!(
        token_request(&emus, &other).await.0,
        200,
        "other users are unaffected"
    );

    emus.entra
        .set_token_error(DEMO_USER_ID, TokenErrorKind::MfaRequired);
    let (status, body) = token_request(&emus, &form).await;
    assert_eq!(status, 400);
    assert_entra_error(&body, "interaction_required", 50076);
    let claims: Value = serde_json::from_str(body["claims"].as_str().unwrap()).unwrap();
    assert_eq!(claims["access_token"]["capolids"]["essential"], true);

    assert_eq!(c.delete(&control).send().await.unwrap().status(), 204);
    assert_eq!(token_request(&emus, &form).await.0, 200);
}

#[tokio::test]
async fn certificate_and_federated_client_assertions_authenticate_the_gateway() {
    let emus = start().await;
    let scope = format!("{}/User.ReadWrite", emus.graph_url());
    let assertion = emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN));
    let cert = emus.entra.create_client_certificate().unwrap();
    let key = EncodingKey::from_rsa_pem(cert.private_key_pem.as_bytes()).unwrap();
    let sign = |aud: &str, thumbprint: &str, exp_offset: i64| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut header = Header::new(Algorithm::PS256);
        header.x5t_s256 = Some(thumbprint.to_owned());
        let claims = json!({"aud": aud, "iss": GATEWAY_CLIENT_ID, "sub": GATEWAY_CLIENT_ID, "jti": uuid::Uuid::new_v4().to_string(), "nbf": now, "exp": now + exp_offset});
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let with_assertion = |client_assertion: String| {
        let mut form = obo_form(&assertion, &scope);
        form.push((
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
        ));
        form.push(("client_assertion", client_assertion));
        form
    };
    let endpoint = emus.entra.token_endpoint();
    let (status, body) =
        token_request(&emus, &with_assertion(sign(&endpoint, &cert.x5t_s256, 600))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = token_request(
        &emus,
        &with_assertion(sign("https://elsewhere/token", &cert.x5t_s256, 600)),
    )
    .await;
    assert_eq!(status, 401);
    assert_entra_error(&body, "invalid_client", 700027);
    let (_, body) = token_request(
        &emus,
        &with_assertion(sign(&endpoint, "bm90LXJlZ2lzdGVyZWQ", 600)),
    )
    .await;
    assert_entra_error(&body, "invalid_client", 700027);
    let (_, body) =
        token_request(&emus, &with_assertion(sign(&endpoint, &cert.x5t_s256, -10))).await;
    assert_entra_error(&body, "invalid_client", 700024);

    // Federated (workload identity) assertions, fresh and expired, also minted through the control API.
    let (status, body) = token_request(
        &emus,
        &with_assertion(emus.entra.federated_assertion(None, 600)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = token_request(
        &emus,
        &with_assertion(emus.entra.federated_assertion(None, -1)),
    )
    .await;
    assert_eq!(status, 401);
    assert_entra_error(&body, "invalid_client", 700024);
    let minted: Value = client(&emus)
        .post(format!(
            "{}/_emulator/federated-assertions",
            emus.entra_url()
        ))
        .json(&json!({"subject": "system:serviceaccount:other:sa"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (_, body) = token_request(
        &emus,
        &with_assertion(minted["assertion"].as_str().unwrap().to_owned()),
    )
    .await;
    assert_entra_error(&body, "invalid_client", 70021);

    // Client credentials: an app-only Graph token.
    let form = vec![
        ("grant_type", "client_credentials".to_string()),
        ("client_id", GATEWAY_CLIENT_ID.into()),
        ("client_secret", GATEWAY_CLIENT_SECRET.into()),
        ("scope", format!("{}/.default", emus.graph_url())),
    ];
    let (status, body) = token_request(&emus, &form).await;
    assert_eq!(status, 200, "{body}");
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(
        (claims["idtyp"].as_str(), claims.get("scp")),
        (Some("app"), None)
    );
    assert_eq!(
        emus.entra
            .counters()
            .by_grant_type
            .get("client_credentials"),
        Some(&1)
    );
}

#[tokio::test]
async fn status_faults_answer_n_times_with_retry_after_then_clear() {
    let emus = start().await;
    let c = client(&emus);
    let g = emus.graph_url();
    let token = emus.graph_token(DEMO_USER_UPN, &["User.ReadWrite"]);
    let url = format!("{g}/v1.0/me/photo/$value");
    let rule = json!({"kind": "status", "status": 429, "retry_after": "1.5", "times": 2, "method": "PUT", "path_prefix": "/v1.0/ME"});
    let resp = c
        .post(format!("{g}/_emulator/faults"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    for _ in 0..2 {
        let resp = put(&c, &url, &token, sample_jpeg(8, 8, "f")).await;
        assert_eq!(resp.headers()["retry-after"], "1.5");
        assert_eq!(graph_error(resp, 429).await, "TooManyRequests");
    }
    assert_eq!(
        put(&c, &url, &token, sample_jpeg(8, 8, "f")).await.status(),
        200,
        "only the next 2 requests"
    );

    // Until cleared; GET is not matched by a PUT rule.
    emus.graph.add_fault(FaultRule::status(503).method("PUT"));
    assert_eq!(
        put(&c, &url, &token, sample_jpeg(8, 8, "g")).await.status(),
        503
    );
    assert_eq!(
        c.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        put(&c, &url, &token, sample_jpeg(8, 8, "g")).await.status(),
        503
    );
    assert_eq!(
        c.delete(format!("{g}/_emulator/faults"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        put(&c, &url, &token, sample_jpeg(8, 8, "g")).await.status(),
        200
    );

    // An unreadable body.
    emus.graph
        .add_fault(FaultRule::status(502).garbage().times(1));
    let resp = put(&c, &url, &token, sample_jpeg(8, 8, "h")).await;
    assert_eq!(resp.status(), 502);
    assert!(serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).is_err());

    let counters: Value = c
        .get(format!("{g}/_emulator/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["by_status"]["429"], 2, "{counters}");
    assert_eq!(counters["by_status"]["503"], 2, "{counters}");
    assert_eq!(counters["by_method"]["GET"], 1, "{counters}");
    assert_eq!(counters["by_path"]["/me/photo/$value"], 8, "{counters}");
    let recorded: Value = c
        .get(format!("{g}/_emulator/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        recorded.as_array().unwrap().len(),
        7,
        "every write is recorded, faulted ones too"
    );

    assert_eq!(
        c.post(format!("{g}/_emulator/reset"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(emus.graph.counters().total, 0);
    assert!(emus.graph.requests().is_empty());
    assert!(
        emus.graph.photo_of_user(DEMO_USER_UPN).is_none(),
        "reset forgets photos"
    );
}

#[tokio::test]
async fn latency_reset_and_refused_connections() {
    let emus = start().await;
    let c = client(&emus);
    let e = emus.entra_url();
    let discovery = format!(
        "{e}/{}/v2.0/.well-known/openid-configuration",
        emus.tenant_id()
    );

    emus.entra
        .add_fault(FaultRule::latency(Duration::from_millis(400)).times(1));
    let t = Instant::now();
    assert_eq!(c.get(&discovery).send().await.unwrap().status(), 200);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    assert_eq!(c.get(&discovery).send().await.unwrap().status(), 200);
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "latency applied only once"
    );

    emus.entra.add_fault(
        FaultRule::reset()
            .path_prefix(&format!("/{}/v2.0/", emus.tenant_id()))
            .times(1),
    );
    let err = c.get(&discovery).send().await.unwrap_err();
    assert!(
        !err.is_status(),
        "a transport error, not an answer: {err:?}"
    );
    assert_eq!(c.get(&discovery).send().await.unwrap().status(), 200);

    let resp = c
        .post(format!("{e}/_emulator/faults"))
        .json(&json!({"kind": "refuse", "duration_ms": 800}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let err = c.get(&discovery).send().await.unwrap_err();
    assert!(
        err.is_connect(),
        "connection refused while not listening: {err:?}"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        c.get(&discovery).send().await.unwrap().status(),
        200,
        "listening again on the same port"
    );

    emus.entra
        .add_fault(FaultRule::status(503).retry_after("3"));
    assert_eq!(c.get(&discovery).send().await.unwrap().status(), 503);
    emus.entra
        .set_token_error(DEMO_USER_UPN, TokenErrorKind::ConsentRequired);
    assert!(emus.entra.counters().discovery > 0);
    assert_eq!(
        c.post(format!("{e}/_emulator/reset"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        c.get(&discovery).send().await.unwrap().status(),
        200,
        "reset clears faults"
    );
    assert_eq!(emus.entra.counters().discovery, 1, "and counters");
    let form = with_secret(
        obo_form(
            &emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN)),
            &format!("{}/User.ReadWrite", emus.graph_url()),
        ),
        GATEWAY_CLIENT_SECRET,
    );
    assert_eq!(
        token_request(&emus, &form).await.0,
        200,
        "and injected token errors"
    );
}

#[tokio::test]
async fn control_api_mints_tokens_the_gateway_would_accept() {
    let emus = start().await;
    let c = client(&emus);
    let body: Value = c
        .post(format!("{}/_emulator/tokens", emus.entra_url()))
        .json(&json!({"user": "megan.bowen@contoso.onmicrosoft.com", "scope": "access_as_user Photos.Write", "ttl_secs": 120, "app": "11111111-2222-4333-8444-555555555555"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(
        (header.alg, header.kid.as_deref(), header.typ.as_deref()),
        (
            Algorithm::RS256,
            Some(emus.current_kid().as_str()),
            Some("JWT")
        )
    );
    let claims = claims_of(token);
    assert_eq!(claims["aud"], GATEWAY_CLIENT_ID);
    assert_eq!(
        claims["iss"],
        format!("{}/{}/v2.0", emus.entra_url(), emus.tenant_id())
    );
    assert_eq!(claims["scp"], "access_as_user Photos.Write");
    assert_eq!(claims["azp"], "11111111-2222-4333-8444-555555555555");
    assert_eq!(
        claims["preferred_username"],
        "megan.bowen@contoso.onmicrosoft.com"
    );
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
    // Verifiable with the published public key, as a gateway would.
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(emus.public_key_pem().as_bytes()).unwrap();
    let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
    v.set_audience(&[GATEWAY_CLIENT_ID]);
    assert!(jsonwebtoken::decode::<Value>(token, &key, &v).is_ok());

    let env: std::collections::HashMap<String, String> = emus.gateway_env().into_iter().collect();
    assert_eq!(env["PHOTO_GATEWAY_AUTHORITY_HOST"], emus.entra_url());
    assert_eq!(env["PHOTO_GATEWAY_GRAPH_BASE_URL"], emus.graph_url());
    assert_eq!(
        std::fs::read_to_string(&env["PHOTO_GATEWAY_CA_BUNDLE_FILE"]).unwrap(),
        emus.ca_pem()
    );
}
