//! Session-token verification: cold (full RS256 signature check and claims) vs cached (the
//! verified-token cache keyed by SHA-256 of the token), per call, next to a baseline run in the
//! same process: the bare RS256 signature check of the same tokens in pure Rust (the `rsa`
//! crate, what jsonwebtoken's `rust_crypto` backend does), against which the native
//! (`aws_lc_rs`) backend the service uses is measured.
//!
//! Run with `cargo bench -p resonance-api --bench verify`. No network: the key is the
//! development key (a static RSA-2048 public key), so the figures are the verifier's own cost.

use rsa::{Pkcs1v15Sign, RsaPrivateKey, pkcs1::DecodeRsaPrivateKey};
use sha2::{Digest, Sha256};
use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use resonance_api::{
    auth::{
        Authenticator, clerk_http_client,
        dev::{self, DevTokenSpec},
        keys::KeySource,
        machine::MachineVerifier,
        session::SessionVerifier,
    },
    config::ClerkLimits,
    tenant::TokenKind,
};

const COLD_CALLS: usize = 2_000;
const CACHED_CALLS: usize = 200_000;

fn per_call(total: Duration, calls: usize) -> f64 {
    total.as_nanos() as f64 / calls as f64
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("resonance-bench-{}", std::process::id()));
    let key = dev::load_or_create(&dir)?;
    let authenticator = || -> anyhow::Result<Authenticator> {
        let session = SessionVerifier {
            keys: KeySource::Static(key.decoding_key().into()),
            issuer: Some(dev::DEV_ISSUER.into()),
            authorized_parties: vec![],
            skew: 5,
            kind: TokenKind::DevelopmentToken,
        };
        let machine = MachineVerifier::new(
            clerk_http_client()?,
            "http://127.0.0.1:9".into(),
            None,
            Duration::from_secs(30),
        );
        Ok(Authenticator::from_parts(
            session,
            machine,
            &ClerkLimits::default(),
        ))
    };
    let now = chrono::Utc::now().timestamp();
    let spec = |user: usize| DevTokenSpec {
        org: Some("org_bench".into()),
        role: "member".into(),
        user: format!("user_{user}"),
        perms: vec!["org:tasks:read".into(), "org:tasks:write".into()],
        v1: false,
        ttl: 3600,
    };
    // Distinct tokens, so every cold call misses the cache.
    let tokens: Vec<String> = (0..COLD_CALLS)
        .map(|i| dev::mint(&key, &spec(i), now))
        .collect::<anyhow::Result<_>>()?;

    // Baseline: the signature alone, in pure Rust.
    let private = RsaPrivateKey::from_pkcs1_pem(&std::fs::read_to_string(dev::key_path(&dir))?)?;
    let public = private.to_public_key();
    let started = Instant::now();
    for token in &tokens {
        let (signed, signature) = token.rsplit_once('.').expect("a JWS");
        let signature = URL_SAFE_NO_PAD.decode(signature)?;
        let digest = Sha256::digest(signed.as_bytes());
        public.verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &digest,
            black_box(&signature),
        )?;
    }
    let baseline = started.elapsed();

    // The native signature check alone, as jsonwebtoken makes it (the public key parsed on
    // every call), and with the key parsed once.
    use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use rsa::pkcs1::EncodeRsaPublicKey;
    let der = public.to_pkcs1_der()?;
    let signatures: Vec<(&str, Vec<u8>)> = tokens
        .iter()
        .map(|token| {
            let (signed, signature) = token.rsplit_once('.').expect("a JWS");
            (
                signed,
                URL_SAFE_NO_PAD.decode(signature).expect("base64url"),
            )
        })
        .collect();
    let started = Instant::now();
    for (signed, signature) in &signatures {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der.as_bytes())
            .verify(signed.as_bytes(), black_box(signature))
            .expect("valid");
    }
    let native_unparsed = started.elapsed();
    let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der.as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    for (signed, signature) in &signatures {
        parsed
            .verify_sig(signed.as_bytes(), black_box(signature))
            .expect("valid");
    }
    let native_parsed = started.elapsed();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let auth = authenticator()?;
        let started = Instant::now();
        for token in &tokens {
            black_box(auth.authenticate(black_box(token), None).await?);
        }
        let cold = started.elapsed();

        let auth = authenticator()?;
        let token = &tokens[0];
        auth.authenticate(token, None).await?;
        let started = Instant::now();
        for _ in 0..CACHED_CALLS {
            black_box(auth.authenticate(black_box(token), None).await?);
        }
        let cached = started.elapsed();

        let cold_ns = per_call(cold, COLD_CALLS);
        let baseline_ns = per_call(baseline, COLD_CALLS);
        let cached_ns = per_call(cached, CACHED_CALLS);
        println!("session token verification, per call");
        println!(
            "  cold   (RS256 + claims, {COLD_CALLS} distinct tokens): {:>10.1} µs",
            cold_ns / 1000.0
        );
        println!(
            "  baseline: pure-Rust RS256 signature only (rsa crate): {:>10.1} µs",
            baseline_ns / 1000.0
        );
        println!("  cold / baseline: {:.2}", cold_ns / baseline_ns);
        println!(
            "  native signature only, key parsed per call / once: {:>6.1} / {:.1} µs",
            per_call(native_unparsed, COLD_CALLS) / 1000.0,
            per_call(native_parsed, COLD_CALLS) / 1000.0
        );
        println!(
            "  cached (SHA-256 + moka lookup, {CACHED_CALLS} calls): {:>10.1} µs",
            cached_ns / 1000.0
        );
        println!("  speed-up: {:.0}x", cold_ns / cached_ns);
        anyhow::Ok(())
    })?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
