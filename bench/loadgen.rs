//! Open-loop HTTP load generator for the benchmark: sends requests at a fixed rate (so latency
//! is measured from when each request was due, without coordinated omission) and prints the
//! achieved rate and latency percentiles.
//!
//! Usage: loadgen <requests-file> <rate-per-second> <seconds> [warm-up-seconds]
//! Requests due during the warm-up (default 2 s: connections opening, caches filling) are sent
//! but not counted.
//! Each line of the requests file is `METHOD<TAB>URL<TAB>TOKEN[<TAB>JSON BODY]`; lines are used
//! round-robin.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::Mutex;

struct Request {
    method: reqwest::Method,
    url: String,
    token: String,
    body: Option<String>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 && args.len() != 5 {
        eprintln!("usage: loadgen <requests-file> <rate-per-second> <seconds> [warm-up-seconds]");
        std::process::exit(2);
    }
    let requests: Vec<Request> = std::fs::read_to_string(&args[1])
        .expect("requests file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.splitn(4, '\t');
            Request {
                method: parts.next().unwrap().parse().expect("method"),
                url: parts.next().expect("url").to_owned(),
                token: parts.next().expect("token").to_owned(),
                body: parts.next().map(str::to_owned),
            }
        })
        .collect();
    let rate: f64 = args[2].parse().expect("rate");
    let seconds: f64 = args[3].parse().expect("seconds");
    let warm_up: f64 = args
        .get(4)
        .map_or(2.0, |w| w.parse().expect("warm-up seconds"));
    let requests = Arc::new(requests);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .unwrap();
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));

    let skipped = (rate * warm_up) as usize;
    let total = skipped + (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let measured_from = start + interval * skipped as u32;
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let request = &requests[i % requests.len()];
        let mut builder = client
            .request(request.method.clone(), &request.url)
            .bearer_auth(&request.token);
        if let Some(body) = &request.body {
            builder = builder
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let latencies = latencies.clone();
        let errors = errors.clone();
        let counted = i >= skipped;
        tasks.push(tokio::spawn(async move {
            let ok = match builder.send().await {
                Ok(response) => {
                    let ok = response.status().is_success();
                    let _ = response.bytes().await;
                    ok
                }
                Err(_) => false,
            };
            if !counted {
                return;
            }
            if !ok {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            latencies
                .lock()
                .await
                .push(due.elapsed().as_secs_f64() * 1000.0);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = measured_from.elapsed().as_secs_f64();
    let mut latencies = latencies.lock().await.clone();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "requests={} errors={} rate={:.0}/s p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
        latencies.len(),
        errors.load(std::sync::atomic::Ordering::Relaxed),
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0.0),
    );
}
