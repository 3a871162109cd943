//! What recording one request's metrics costs: the calls `http::request_context` makes per
//! request (`method_label`, `record_request`: a counter and a histogram sample), timed over
//! many iterations against the same loop without them. Run it with
//! `cargo bench -p resonance-api --bench metrics`; the budget is 2 µs per request.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use resonance_api::telemetry::metrics;

const ITERATIONS: u32 = 1_000_000;

/// A request mix like the API's: a few route templates, methods and statuses.
const ROUTES: [(Option<&str>, &str, u16); 6] = [
    (Some("/v1/tasks"), "GET", 200),
    (Some("/v1/tasks/{id}"), "GET", 200),
    (Some("/v1/tasks"), "POST", 201),
    (Some("/v1/projects/{id}"), "PATCH", 412),
    (None, "GET", 404),
    (Some("/healthz"), "GET", 200),
];

/// What the middleware has at hand anyway: the route template as an owned `String` (from
/// `match_pattern`), the method, the status and the latency.
fn request(i: u32) -> (Option<String>, &'static str, u16, Duration) {
    let (route, method, status) = ROUTES[i as usize % ROUTES.len()];
    let latency = Duration::from_micros(200 + u64::from(i % 5000));
    (route.map(str::to_owned), method, status, latency)
}

fn run(record: bool) -> Duration {
    let started = Instant::now();
    for i in 0..ITERATIONS {
        let (route, method, status, latency) = black_box(request(i));
        if record {
            let method = metrics::method_label(method);
            metrics::record_request(route.as_deref(), method, status, latency);
        }
        black_box(route);
    }
    started.elapsed()
}

fn per_request(elapsed: Duration) -> f64 {
    elapsed.as_nanos() as f64 / f64::from(ITERATIONS)
}

fn main() {
    let handle = metrics::install();
    // Warm up: the series exist and the route labels are interned, as after the first requests.
    run(true);
    let mut baseline = f64::MAX;
    let mut recorded = f64::MAX;
    for _ in 0..3 {
        baseline = baseline.min(per_request(run(false)));
        recorded = recorded.min(per_request(run(true)));
        // Fold the histogram samples into buckets, as the upkeep thread or a scrape does.
        handle.run_upkeep();
    }
    let render_started = Instant::now();
    let text = metrics::render();
    let render = render_started.elapsed();
    println!("{ITERATIONS} requests, best of 3 runs:");
    println!("  without metrics     {baseline:8.1} ns/request");
    println!("  with metrics        {recorded:8.1} ns/request");
    println!(
        "  overhead            {:8.1} ns/request (budget 2000 ns)",
        recorded - baseline
    );
    println!(
        "  one scrape render   {:8.1} µs ({} bytes)",
        render.as_secs_f64() * 1e6,
        text.len()
    );
}
