//! JWT validation cost per caller token, through the gateway's real validation path:
//! `TokenValidator::validate` over a `KeyStore` loaded (discovery + JWKS, over HTTPS) from the
//! Entra emulator, exactly as `photo-gateway serve` builds them.
//!
//!     CARGO_TARGET_DIR=/work/target-bench cargo bench -p photo-gateway-bench --bench jwt
//!
//! The benchmark binary (`photo-gateway-bench`) runs this too and copies the estimates into its
//! results; see BENCHMARKS.md.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use photo_gateway::auth::{KeyStore, TokenValidator};
use photo_gateway::config::Config;
use photo_gateway::outbound::{client, extra_roots};
use photo_gateway_emulators::{
    CallerTokenSpec, DEMO_USER_UPN, EmulatorOptions, Emulators, TENANT_ID,
};

fn jwt(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (_emus, validator, v2, v1) = rt.block_on(async {
        let emus = Emulators::start(EmulatorOptions::default())
            .await
            .expect("start the emulators");
        let config = Config::from_vars(emus.gateway_env()).expect("config from the emulators");
        let roots = extra_roots(&config.upstream).expect("CA bundle");
        let http =
            client(&config.upstream, &roots, config.entra.request_timeout).expect("HTTP client");
        let keys = Arc::new(KeyStore::new(
            http,
            config.entra.discovery_url_v2(),
            config.entra.discovery_url_v1(),
            config.jwks.issuers_override.clone(),
            config.jwks.unknown_kid_cooldown,
        ));
        keys.reload(true).await.expect("load discovery and JWKS");
        let validator = TokenValidator::new(
            &config.caller,
            vec![
                config.entra.client_id.clone(),
                config.entra.app_id_uri.clone(),
            ],
            config.graph.audiences(),
            keys,
        );
        let v2 = emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN));
        let mut spec = CallerTokenSpec::for_user(DEMO_USER_UPN);
        spec.version = 1;
        let v1 = emus.caller_token(&spec);
        for t in [&v2, &v1] {
            let caller = validator
                .validate(t)
                .await
                .expect("a fresh token validates");
            assert_eq!(caller.tenant_id, TENANT_ID);
        }
        (emus, validator, v2, v1)
    });

    let mut group = c.benchmark_group("jwt_validate");
    group.bench_function("v2_caller_token", |b| {
        b.to_async(&rt).iter(|| async {
            validator
                .validate(&v2)
                .await
                .expect("the token stays valid for the whole benchmark")
        })
    });
    group.bench_function("v1_caller_token", |b| {
        b.to_async(&rt).iter(|| async {
            validator
                .validate(&v1)
                .await
                .expect("the token stays valid for the whole benchmark")
        })
    });
    group.finish();
}

criterion_group!(benches, jwt);
criterion_main!(benches);
