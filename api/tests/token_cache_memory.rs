//! What the verified-token cache costs the process, measured: distinct development tokens are
//! minted and verified through `Authenticator::authenticate`, and the heap the process holds
//! afterwards is counted by a global allocator (its own test binary, so no other test's
//! allocations are counted). Checks that an entry's weight is close to the memory it really
//! holds, and that the cache's memory stays within `CLERK_TOKEN_CACHE_MAX_BYTES` however many
//! tokens pass through it.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        Arc,
        atomic::{AtomicIsize, Ordering},
    },
    time::Instant,
};

use resonance_api::{
    auth::{
        Authenticator, clerk_http_client,
        dev::{self, DevKey, DevTokenSpec},
        keys::KeySource,
        machine::MachineVerifier,
        session::SessionVerifier,
    },
    config::ClerkLimits,
    tenant::TokenKind,
};

/// Live heap bytes, each allocation counted as glibc's malloc lays it out (8-byte header,
/// 16-byte steps, 32 at least).
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

fn footprint(size: usize) -> isize {
    ((size + 8).next_multiple_of(16).max(32)) as isize
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(footprint(layout.size()), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(footprint(layout.size()), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(footprint(layout.size()), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            footprint(new_size) - footprint(layout.size()),
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Resident set size of this process, from /proc (Linux); 0 elsewhere.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn authenticator(key: &DevKey, max_bytes: u64) -> Authenticator {
    let session = SessionVerifier {
        keys: KeySource::Static(Arc::new(key.decoding_key())),
        issuer: Some(dev::DEV_ISSUER.into()),
        authorized_parties: vec![],
        skew: 5,
        kind: TokenKind::DevelopmentToken,
    };
    let machine = MachineVerifier::new(
        clerk_http_client().unwrap(),
        "http://127.0.0.1:9".into(),
        None,
        std::time::Duration::from_secs(30),
    );
    let limits = ClerkLimits {
        token_cache_max_bytes: max_bytes,
        ..ClerkLimits::default()
    };
    Authenticator::from_parts(session, machine, &limits)
}

/// Distinct session tokens, shaped like an organization member's (v2 claims with features).
fn tokens(key: &DevKey, count: usize) -> Vec<String> {
    let now = chrono::Utc::now().timestamp();
    (0..count)
        .map(|i| {
            let spec = DevTokenSpec {
                org: Some(format!("org_2x{i:024}")),
                role: "member".into(),
                user: format!("user_2y{i:024}"),
                perms: vec![
                    "org:tasks:read".into(),
                    "org:tasks:write".into(),
                    "org:projects:read".into(),
                ],
                v1: false,
                ttl: 3600,
            };
            dev::mint(key, &spec, now).unwrap()
        })
        .collect()
}

/// Verifies every token; returns the growth of the live heap (the tokens themselves were
/// allocated before) and of the RSS.
async fn verify_all(auth: &Authenticator, tokens: &[String]) -> (isize, i64) {
    // Warm up what is allocated once (the runtime, the cache's buffers, the HTTP client).
    let (heap, resident) = (live(), rss() as i64);
    for token in tokens {
        auth.authenticate(token, None).await.expect("a good token");
    }
    auth.cache_usage().await;
    (live() - heap, rss() as i64 - resident)
}

#[tokio::test(flavor = "current_thread")]
async fn the_token_cache_holds_what_it_weighs_and_no_more_than_its_budget() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let key = dev::load_or_create(dir.path()).unwrap();
    let minted = tokens(&key, 1_500);
    let minting = started.elapsed();

    // 1. Room for all: the weights add up to what the entries hold.
    let auth = authenticator(&key, 256 * 1024 * 1024);
    auth.authenticate(&minted[0], None).await.unwrap();
    let sample = &minted[1..1_001];
    let (heap, _) = verify_all(&auth, sample).await;
    let usage = auth.cache_usage().await;
    assert_eq!(usage.entries, 1_001);
    let weighed = usage.bytes as f64 * 1_000.0 / 1_001.0;
    let ratio = weighed / heap as f64;
    println!(
        "per entry: weighed {:.0} B, held {:.0} B (ratio {ratio:.2})",
        weighed / 1_000.0,
        heap as f64 / 1_000.0
    );
    assert!(
        (0.8..=1.25).contains(&ratio),
        "an entry's weight should be within 20% of what it holds: weighed {weighed:.0} B, held {heap} B for 1000 entries"
    );
    drop(auth);

    // 2. A 256 KiB budget, 1 500 tokens (ten times the budget's worth): the cache and the
    //    process stay within it.
    let budget: u64 = 256 * 1024;
    let auth = authenticator(&key, budget);
    auth.authenticate(&minted[0], None).await.unwrap();
    let (heap, resident) = verify_all(&auth, &minted).await;
    let usage = auth.cache_usage().await;
    let unbounded = usage.bytes as f64 / usage.entries as f64 * minted.len() as f64;
    println!(
        "budget {budget} B: {} entries weighing {} B; heap grew {heap} B, RSS {resident} B; \
         unbounded it would hold ~{unbounded:.0} B ({} ms minting, {} ms in all)",
        usage.entries,
        usage.bytes,
        minting.as_millis(),
        started.elapsed().as_millis()
    );
    assert!(usage.bytes <= budget, "{usage:?}");
    assert!(
        usage.bytes >= budget / 2,
        "the cache is used up to its budget: {usage:?}"
    );
    assert!(
        unbounded > 4.0 * budget as f64,
        "the test passes enough tokens through"
    );
    // What the process holds after all of them: the cache's budget plus some slack for the
    // cache's own tables and buffers, far from the unbounded figure.
    assert!(
        heap < (budget + 512 * 1024) as isize,
        "the heap grew {heap} B for a {budget} B budget"
    );
}
