//! Crafted tokens (issue 5, "Token attacks"): algorithm confusion, key-selection headers,
//! structural tricks, claim types and values, and tokens in the wrong place. Every one is refused
//! with the 400 or 401 the errors table gives, never a 5xx; nothing reaches Graph, no token is
//! exchanged at Entra, and the gateway still serves a valid request afterwards.

use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::support::jwt::{
    attacker, b64, b64_std, claims, header, now, pem_body, pem_wrap, rs256, sign_hmac, sign_raw,
    spki_to_pkcs1, tenant_key,
};
use crate::support::raw_http::send_framed;
use crate::support::{DEMO, ME, MEGAN, TestApp, jpeg, spawn_app};

/// What a refused request must look like.
#[derive(Clone, Copy)]
enum Expect {
    /// 401 `invalid-token` with `error="invalid_token"`.
    InvalidToken,
    /// 400 `invalid-request` with `error="invalid_request"`.
    InvalidRequest,
}

/// Checks one answer; returns a description of what is wrong, if anything.
async fn check(resp: reqwest::Response, expect: Expect, what: &str) -> Option<String> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let (want_status, want_code, want_challenge) = match expect {
        Expect::InvalidToken => (401, "invalid-token", "error=\"invalid_token\""),
        Expect::InvalidRequest => (400, "invalid-request", "error=\"invalid_request\""),
    };
    let www = headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if status >= 500 {
        return Some(format!("{what}: a {status} (5xx) answer: {text}"));
    }
    if status != want_status || body["code"] != want_code {
        return Some(format!(
            "{what}: expected {want_status} {want_code}, got {status} {}: {text}",
            body["code"]
        ));
    }
    if ct != "application/problem+json" {
        return Some(format!("{what}: content type {ct:?}"));
    }
    if !www.starts_with("Bearer") || !www.contains(want_challenge) {
        return Some(format!(
            "{what}: WWW-Authenticate {www:?} lacks {want_challenge}"
        ));
    }
    if body["requestId"].as_str().is_none() || body["detail"].as_str().is_none_or(str::is_empty) {
        return Some(format!("{what}: problem body incomplete: {text}"));
    }
    None
}

async fn put_with(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .put(format!("{}{ME}", app.address))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "image/jpeg")
        .body(jpeg(200, 3))
        .send()
        .await
        .expect("request sent")
}

/// Sends every token, collects every deviation, then checks nothing went upstream and that the
/// gateway still serves a valid request.
async fn run_cases(app: &TestApp, cases: &[(String, String)]) {
    let mut failures = Vec::new();
    for (what, token) in cases {
        let exchanges = app.emus.entra.counters().token_requests;
        if let Some(f) = check(put_with(app, token).await, Expect::InvalidToken, what).await {
            failures.push(f);
        }
        // A token the gateway let through to the On-Behalf-Of exchange was not validated locally,
        // even if Entra then refused it.
        let after = app.emus.entra.counters().token_requests;
        if after != exchanges {
            failures.push(format!(
                "{what}: passed local validation and was sent to Entra for an exchange"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} tokens not refused as the table says:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_nothing_upstream_then_still_serving(app).await;
}

async fn assert_nothing_upstream_then_still_serving(app: &TestApp) {
    app.assert_nothing_upstream("a refused token");
    assert_eq!(app.emus.graph.counters().total, 0, "no Graph call at all");
    app.assert_still_serving().await;
}

#[tokio::test]
async fn algorithm_confusion_tokens_are_401() {
    let app = spawn_app().await;
    let kid = app.emus.current_kid();
    let c = claims(&app);
    let payload = serde_json::to_vec(&c).unwrap();
    let good = app.token(DEMO);
    let good_sig = good.split('.').nth(2).unwrap().to_owned();
    let mut cases: Vec<(String, String)> = Vec::new();

    // alg none in its spellings, with and without a signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        let h = b64(header.to_string().as_bytes());
        cases.push((
            format!("alg {alg}, empty signature"),
            format!("{h}.{}.", b64(&payload)),
        ));
        cases.push((
            format!("alg {alg}, a real RS256 signature of other bytes"),
            format!("{h}.{}.{good_sig}", b64(&payload)),
        ));
    }
    // alg in lower case and an unknown alg.
    for alg in ["rs256", "RS1", "ES256K"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        cases.push((
            format!("alg {alg}"),
            format!(
                "{}.{}.{good_sig}",
                b64(header.to_string().as_bytes()),
                b64(&payload)
            ),
        ));
    }

    // HMAC with the RSA public key as the secret, in every form a confused verifier might use.
    let spki_pem = app.emus.public_key_pem();
    let spki_der = pem_body(&spki_pem);
    let pkcs1_der = spki_to_pkcs1(&spki_der);
    let pkcs1_pem = pem_wrap("RSA PUBLIC KEY", &pkcs1_der);
    let jwk = app.emus.entra.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .cloned()
        .expect("current key in the JWKS");
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("SPKI PEM", spki_pem.as_bytes().to_vec()),
        (
            "SPKI PEM without trailing newline",
            spki_pem.trim_end().as_bytes().to_vec(),
        ),
        ("SPKI DER", spki_der.clone()),
        ("PKCS#1 PEM", pkcs1_pem.as_bytes().to_vec()),
        ("PKCS#1 DER", pkcs1_der.clone()),
        ("PKCS#1 DER base64", b64_std(&pkcs1_der).into_bytes()),
        ("SPKI DER base64", b64_std(&spki_der).into_bytes()),
        ("JWK JSON", jwk.to_string().into_bytes()),
        (
            "JWK modulus",
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk["n"].as_str().unwrap())
                .unwrap(),
        ),
    ];
    for (form, secret) in &secrets {
        for alg in [Algorithm::HS256, Algorithm::HS384] {
            cases.push((
                format!("{alg:?} with the public key as {form}"),
                sign_hmac(&header(alg, &kid), &c, secret),
            ));
        }
    }
    cases.push((
        "HS512 with the public key as SPKI PEM".into(),
        sign_hmac(&header(Algorithm::HS512, &kid), &c, spki_pem.as_bytes()),
    ));

    // The tenant's own key, but not RS256: the algorithm is pinned.
    for alg in [Algorithm::PS256, Algorithm::RS384, Algorithm::RS512] {
        cases.push((
            format!("{alg:?} signed by the tenant key"),
            app.emus.sign_jwt(header(alg, &kid), &c),
        ));
    }

    // RS256 signed by a key nobody published, under the tenant's known kid.
    let evil = attacker();
    cases.push((
        "RS256 by an unknown key under a known kid".into(),
        evil.sign(&rs256(&kid), &c),
    ));
    cases.push((
        "RS256 by an unknown key without a kid".into(),
        sign_raw(
            br#"{"alg":"RS256","typ":"JWT"}"#,
            &payload,
            &evil.key,
            Algorithm::RS256,
        ),
    ));
    cases.push((
        "RS256 by the tenant key without a kid".into(),
        sign_raw(
            br#"{"alg":"RS256","typ":"JWT"}"#,
            &payload,
            &tenant_key(&app),
            Algorithm::RS256,
        ),
    ));

    run_cases(&app, &cases).await;
}

#[tokio::test]
async fn key_selection_headers_are_401() {
    let app = spawn_app().await;
    let kid = app.emus.current_kid();
    let c = claims(&app);
    let evil = attacker();
    let mut cases: Vec<(String, String)> = Vec::new();

    // Odd kids, signed by the tenant key: no file, URL or path is ever derived from a kid.
    for (what, k) in [
        (
            "kid with path traversal",
            "../../../../../../etc/passwd".to_owned(),
        ),
        ("kid traversal to the real kid", format!("../{kid}")),
        ("kid with an encoded traversal", format!("..%2F..%2F{kid}")),
        ("kid with a URL", format!("https://attacker.example/{kid}")),
        ("kid of 300 bytes", "k".repeat(300)),
        ("kid of 10 000 bytes", "k".repeat(10_000)),
        ("non-ASCII kid", "ключ-🔑-鍵".to_owned()),
        ("kid with a NUL", format!("{kid}\u{0}")),
        ("kid with CR LF", format!("{kid}\r\nX-Injected: 1")),
        ("empty kid", String::new()),
        (
            "kid = the real kid with a trailing space",
            format!("{kid} "),
        ),
    ] {
        cases.push((what.to_owned(), app.emus.sign_jwt(rs256(&k), &c)));
    }
    let key = tenant_key(&app);
    cases.push((
        "kid as a number".into(),
        sign_raw(
            br#"{"alg":"RS256","typ":"JWT","kid":12345}"#,
            &serde_json::to_vec(&c).unwrap(),
            &key,
            Algorithm::RS256,
        ),
    ));
    cases.push((
        "kid as an array holding the real kid".into(),
        sign_raw(
            json!({"alg": "RS256", "typ": "JWT", "kid": [kid]})
                .to_string()
                .as_bytes(),
            &serde_json::to_vec(&c).unwrap(),
            &key,
            Algorithm::RS256,
        ),
    ));

    // Headers that point at a key elsewhere, the token signed by that (attacker) key.
    let mut h = rs256(&kid);
    h.jku = Some("https://attacker.example/keys.json".into());
    cases.push(("jku to another JWKS, known kid".into(), evil.sign(&h, &c)));
    let mut h = rs256("attacker-kid");
    h.jku = Some(format!(
        "{}/{}/discovery/v2.0/keys",
        app.emus.entra_url(),
        app.emus.tenant_id()
    ));
    cases.push((
        "jku to the tenant's own JWKS, unknown kid".into(),
        evil.sign(&h, &c),
    ));
    let mut h = rs256(&kid);
    h.x5u = Some("https://attacker.example/cert.pem".into());
    cases.push(("x5u to another certificate".into(), evil.sign(&h, &c)));
    let mut h = rs256(&kid);
    h.x5c = Some(vec![b64_std(&evil.cert_der)]);
    cases.push((
        "x5c with the attacker's certificate".into(),
        evil.sign(&h, &c),
    ));
    let mut jwk = evil.jwk.clone();
    jwk["kid"] = json!(kid);
    cases.push((
        "jwk header embedding the attacker key".into(),
        sign_raw(
            json!({"alg": "RS256", "typ": "JWT", "kid": kid, "jwk": jwk})
                .to_string()
                .as_bytes(),
            &serde_json::to_vec(&c).unwrap(),
            &evil.key,
            Algorithm::RS256,
        ),
    ));
    cases.push((
        "jwk header embedding the attacker key, no kid".into(),
        sign_raw(
            json!({"alg": "RS256", "typ": "JWT", "jwk": evil.jwk})
                .to_string()
                .as_bytes(),
            &serde_json::to_vec(&c).unwrap(),
            &evil.key,
            Algorithm::RS256,
        ),
    ));

    // crit: the gateway understands no extension, so any `crit` is refused, even a well-signed one.
    for crit in [vec!["exp".to_owned()], vec!["b64".to_owned()], vec![]] {
        let mut h = rs256(&kid);
        h.crit = Some(crit.clone());
        cases.push((
            format!("crit {crit:?} (tenant-signed)"),
            app.emus.sign_jwt(h, &c),
        ));
    }
    cases.push((
        "crit b64=false unencoded payload (tenant-signed)".into(),
        sign_raw(
            json!({"alg": "RS256", "kid": kid, "crit": ["b64"], "b64": false})
                .to_string()
                .as_bytes(),
            &serde_json::to_vec(&c).unwrap(),
            &key,
            Algorithm::RS256,
        ),
    ));

    run_cases(&app, &cases).await;
}

#[tokio::test]
async fn structurally_broken_tokens_are_401() {
    let app = spawn_app().await;
    let kid = app.emus.current_kid();
    let good = app.token(DEMO);
    let parts: Vec<&str> = good.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    let key = tenant_key(&app);
    let mut cases: Vec<(String, String)> = Vec::new();

    // A nested JWT: a tenant-signed outer token whose payload is a valid inner token.
    cases.push((
        "nested JWT (cty JWT), tenant-signed outer".into(),
        sign_raw(
            json!({"alg": "RS256", "typ": "JWT", "cty": "JWT", "kid": kid})
                .to_string()
                .as_bytes(),
            good.as_bytes(),
            &key,
            Algorithm::RS256,
        ),
    ));
    cases.push((
        "nested JWT as a claim only (no other claims)".into(),
        app.emus.sign_jwt(rs256(&kid), &json!({"jwt": good})),
    ));
    // A JWE (five parts) in compact form, and one with a valid token's parts.
    let jwe_header = b64(br#"{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k"}"#);
    cases.push((
        "JWE compact serialization".into(),
        format!(
            "{jwe_header}.{}.{}.{}.{}",
            b64(&[1u8; 256]),
            b64(&[2u8; 12]),
            b64(&[3u8; 64]),
            b64(&[4u8; 16])
        ),
    ));
    cases.push((
        "JWE shape from a valid token".into(),
        format!("{h}.{p}.{s}.{p}.{s}"),
    ));
    // Signatures stripped or replaced.
    cases.push(("stripped signature".into(), format!("{h}.{p}.")));
    cases.push(("no signature part".into(), format!("{h}.{p}")));
    cases.push((
        "signature of another token".into(),
        format!("{h}.{p}.{}", app.token(MEGAN).split('.').nth(2).unwrap()),
    ));
    cases.push((
        "signature truncated by one char".into(),
        format!("{h}.{p}.{}", &s[..s.len() - 1]),
    ));
    // Extra dots and empty parts.
    cases.push(("trailing dot".into(), format!("{h}.{p}.{s}.")));
    cases.push(("four parts".into(), format!("{h}.{p}.{s}.{s}")));
    cases.push(("doubled dot".into(), format!("{h}..{p}.{s}")));
    cases.push(("leading dot".into(), format!(".{h}.{p}.{s}")));
    cases.push(("only dots".into(), "..".into()));
    // Encoding tricks on an otherwise valid token.
    cases.push((
        "base64 padding on the payload".into(),
        format!("{h}.{p}==.{s}"),
    ));
    cases.push((
        "standard base64 (+/) in the signature".into(),
        format!("{h}.{p}.{}", s.replace('-', "+").replace('_', "/")),
    ));
    cases.push((
        "header not JSON".into(),
        format!("{}.{p}.{s}", b64(b"not json at all")),
    ));
    cases.push((
        "payload not JSON, tenant-signed".into(),
        sign_raw(
            json!({"alg": "RS256", "kid": kid}).to_string().as_bytes(),
            b"\xff\xfe not json",
            &key,
            Algorithm::RS256,
        ),
    ));
    cases.push((
        "payload a JSON array, tenant-signed".into(),
        sign_raw(
            json!({"alg": "RS256", "kid": kid}).to_string().as_bytes(),
            b"[1,2,3]",
            &key,
            Algorithm::RS256,
        ),
    ));
    // A correctly signed token over 16 KiB.
    let mut big = claims(&app);
    big["padding"] = json!("x".repeat(17 * 1024));
    let huge = app.emus.sign_jwt(rs256(&kid), &big);
    assert!(huge.len() > 16 * 1024);
    cases.push(("correctly signed token over 16 KiB".into(), huge));
    cases.push(("64 KiB of token characters".into(), "a".repeat(64 * 1024)));

    run_cases(&app, &cases).await;
}

#[tokio::test]
async fn claim_type_and_value_attacks_are_401() {
    let app = spawn_app().await;
    let kid = app.emus.current_kid();
    let c = claims(&app);
    let t = now();
    let mut cases: Vec<(String, String)> = Vec::new();
    let mut variant = |what: &str, edit: &dyn Fn(&mut Value)| {
        let mut v = c.clone();
        edit(&mut v);
        cases.push((what.to_owned(), app.emus.sign_jwt(rs256(&kid), &v)));
    };

    variant("exp as a string", &|v| {
        v["exp"] = json!((t + 600).to_string())
    });
    variant("exp as a float", &|v| v["exp"] = json!(t as f64 + 600.5));
    variant("exp as a float with .0", &|v| {
        v["exp"] = json!(format!("{}.0", t + 600).parse::<f64>().unwrap())
    });
    variant("exp negative", &|v| v["exp"] = json!(-1));
    variant("exp null", &|v| v["exp"] = Value::Null);
    variant("exp an object", &|v| {
        v["exp"] = json!({"$numberLong": "9999999999"})
    });
    variant("exp in ten years (over the maximum lifetime)", &|v| {
        v["exp"] = json!(t + 10 * 365 * 86_400)
    });
    variant("exp u64::MAX", &|v| v["exp"] = json!(u64::MAX));
    variant("exp 2^53", &|v| v["exp"] = json!(9_007_199_254_740_992u64));
    variant("exp over the maximum lifetime, iat now", &|v| {
        v["iat"] = json!(t);
        v["nbf"] = json!(t);
        v["exp"] = json!(t + 86_400 + 3_600);
    });
    variant("no exp", &|v| {
        v.as_object_mut().unwrap().remove("exp");
    });
    variant("no nbf", &|v| {
        v.as_object_mut().unwrap().remove("nbf");
    });
    variant("no exp and no nbf", &|v| {
        let o = v.as_object_mut().unwrap();
        o.remove("exp");
        o.remove("nbf");
    });
    variant("nbf as a string", &|v| {
        v["nbf"] = json!((t - 60).to_string())
    });
    variant("nbf in the future", &|v| {
        v["nbf"] = json!(t + 3_600);
        v["exp"] = json!(t + 7_200);
    });
    variant("expired an hour ago", &|v| {
        v["nbf"] = json!(t - 7_200);
        v["exp"] = json!(t - 3_600);
    });
    let aud = c["aud"].as_str().unwrap().to_owned();
    let iss = c["iss"].as_str().unwrap().to_owned();
    let other_tenant = iss.replace(app.emus.tenant_id(), "72f988bf-86f1-41af-91ab-2d7cd011db47");
    variant("aud array holding only ours", &|v| {
        v["aud"] = json!([aud.clone()])
    });
    variant("aud array holding ours and another", &|v| {
        v["aud"] = json!([aud.clone(), "api://other-app"])
    });
    variant("aud missing", &|v| {
        v.as_object_mut().unwrap().remove("aud");
    });
    variant("aud empty string", &|v| v["aud"] = json!(""));
    variant("aud with a trailing slash", &|v| {
        v["aud"] = json!(format!("{aud}/"))
    });
    variant("iss with a trailing slash", &|v| {
        v["iss"] = json!(format!("{iss}/"))
    });
    variant("iss upper-cased", &|v| v["iss"] = json!(iss.to_uppercase()));
    variant("iss of another tenant", &|v| {
        v["iss"] = json!(other_tenant.clone())
    });
    variant("iss of the public cloud, same tenant", &|v| {
        v["iss"] = json!(format!(
            "https://login.microsoftonline.com/{}/v2.0",
            photo_gateway_emulators::TENANT_ID
        ))
    });
    variant("iss missing", &|v| {
        v.as_object_mut().unwrap().remove("iss");
    });
    variant("iss an array holding ours", &|v| {
        v["iss"] = json!([iss.clone()])
    });

    run_cases(&app, &cases).await;
}

#[tokio::test]
async fn tokens_outside_one_authorization_header_are_400() {
    let app = spawn_app().await;
    let good = app.token(DEMO);
    let other = app.token(MEGAN);
    let mut failures = Vec::new();

    let put = || {
        app.client
            .put(format!("{}{ME}", app.address))
            .header("content-type", "image/jpeg")
            .body(jpeg(200, 3))
    };
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "two Authorization headers, same token",
            put()
                .header("authorization", format!("Bearer {good}"))
                .header("authorization", format!("Bearer {good}")),
        ),
        (
            "two Authorization headers, different users",
            put()
                .header("authorization", format!("Bearer {good}"))
                .header("authorization", format!("Bearer {other}")),
        ),
        (
            "a valid Authorization header and a Basic one",
            put()
                .header("authorization", format!("Bearer {good}"))
                .header("authorization", "Basic dXNlcjpwYXNz"),
        ),
        (
            "two tokens in one header, comma-separated",
            put().header("authorization", format!("Bearer {good}, Bearer {other}")),
        ),
        (
            "token in the query string (and a valid header)",
            app.client
                .put(format!("{}{ME}?access_token={good}", app.address))
                .header("authorization", format!("Bearer {good}"))
                .header("content-type", "image/jpeg")
                .body(jpeg(200, 3)),
        ),
        (
            "token in the query string only",
            app.client
                .put(format!("{}{ME}?access_token={good}", app.address))
                .header("content-type", "image/jpeg")
                .body(jpeg(200, 3)),
        ),
        (
            "token in the query string, upper-case key",
            app.client
                .put(format!("{}{ME}?x=1&ACCESS_TOKEN={good}", app.address))
                .header("content-type", "image/jpeg")
                .body(jpeg(200, 3)),
        ),
        (
            "token in the query string, percent-encoded key",
            app.client
                .put(format!("{}{ME}?access%5Ftoken={good}", app.address))
                .header("content-type", "image/jpeg")
                .body(jpeg(200, 3)),
        ),
        (
            "token in a cookie (and a valid header)",
            put()
                .header("authorization", format!("Bearer {good}"))
                .header("cookie", format!("access_token={good}")),
        ),
        (
            "token in a cookie only",
            put().header("cookie", format!("session=1; access_token={good}")),
        ),
        (
            "token in a cookie named id_token",
            put().header("cookie", format!("id_token={good}")),
        ),
    ];
    for (what, req) in cases {
        let resp = req.send().await.expect("request sent");
        if let Some(f) = check(resp, Expect::InvalidRequest, what).await {
            failures.push(f);
        }
    }

    // Over raw TCP, so no client merges or reorders the headers.
    let host = app.address.trim_start_matches("http://");
    for (what, auth) in [
        (
            "raw: two Authorization headers",
            format!("Authorization: Bearer {good}\r\nAuthorization: Bearer {other}"),
        ),
        (
            "raw: Authorization and lower-case authorization",
            format!("Authorization: Bearer {good}\r\nauthorization: Bearer {good}"),
        ),
        (
            "raw: an empty Authorization header after a valid one",
            format!("Authorization: Bearer {good}\r\nAuthorization: "),
        ),
    ] {
        let head = format!("PUT {ME} HTTP/1.1\r\n{auth}\r\nContent-Type: image/jpeg");
        let (status, body) = send_framed(&app.address, &head, &jpeg(200, 3)).await;
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status != 400 || body["code"] != "invalid-request" {
            failures.push(format!(
                "{what} (to {host}): expected 400 invalid-request, got {status} {body}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} transport cases not refused as the table says:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_nothing_upstream_then_still_serving(&app).await;
}
