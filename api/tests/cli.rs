//! The `resonance` command as an operator runs it: configuration errors, migrations, the
//! OpenAPI document, and a clean stop on SIGTERM.

use std::{
    io::Read,
    net::TcpListener,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn resonance() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_resonance"));
    for var in [
        "DATABASE_URL",
        "RESONANCE_ENV",
        "RESONANCE_BIND",
        "CLERK_SECRET_KEY",
        "CLERK_PUBLISHABLE_KEY",
        "CLERK_JWKS_URL",
        "CLERK_JWT_KEY",
        "CLERK_ISSUER",
    ] {
        command.env_remove(var);
    }
    command.env("RUST_LOG", "warn");
    command
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display())
}

/// Runs `serve` expecting a configuration error: exit status 2 and one line, returned.
fn configuration_error(command: &mut Command) -> String {
    let output = command.arg("serve").output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    stderr.trim().to_owned()
}

#[test]
fn a_bad_value_stops_with_one_line_naming_the_variable() {
    for (var, value) in [
        ("RESONANCE_BIND", "not-an-address"),
        ("RESONANCE_ENV", "staging"),
        ("DATABASE_URL", "mysql://nope"),
        ("RESONANCE_BODY_LIMIT_BYTES", "lots"),
        ("CLERK_CLOCK_SKEW_SECS", "-3"),
        // Out of range.
        ("RESONANCE_BODY_LIMIT_BYTES", "0"),
        ("RESONANCE_WORKERS", "257"),
        ("CLERK_MACHINE_TOKEN_CACHE_SECS", "3601"),
        ("RESONANCE_VOICE_SAMPLE_MAX_BYTES", "1023"),
        // Malformed.
        ("RESONANCE_CORS_ORIGINS", "https://app.example.test/"),
        ("CLERK_WEBHOOK_SECRET", "whsec_"),
        ("RESONANCE_STORAGE_URL", "ftp://files/audio"),
    ] {
        let line = configuration_error(resonance().env(var, value));
        assert!(line.contains(var), "{var}={value}: {line}");
    }
}

#[test]
fn a_bad_plans_file_stops_with_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let line = configuration_error(resonance().env("RESONANCE_PLANS_FILE", &missing));
    assert!(
        line.starts_with("configuration error: RESONANCE_PLANS_FILE: cannot read"),
        "{line}"
    );
    let bad = dir.path().join("plans.json");
    std::fs::write(&bad, r#"{"default": "gold", "plans": {}}"#).unwrap();
    let line = configuration_error(resonance().env("RESONANCE_PLANS_FILE", &bad));
    assert!(
        line.ends_with("the default plan \"gold\" is not among the plans"),
        "{line}"
    );
    assert!(line.contains("RESONANCE_PLANS_FILE"), "{line}");
    let line = configuration_error(resonance().env("RESONANCE_REDIS_URL", "http://cache"));
    assert!(line.contains("RESONANCE_REDIS_URL"), "{line}");
}

#[test]
fn the_line_says_what_is_wrong_and_repeats_no_secret() {
    let out_of_range = "configuration error: RESONANCE_BODY_LIMIT_BYTES: invalid value \"0\": \
                        0 is not in 1..=1073741824";
    let by_variable = configuration_error(resonance().env("RESONANCE_BODY_LIMIT_BYTES", "0"));
    assert_eq!(by_variable, out_of_range);
    let by_flag = configuration_error(resonance().args(["--body-limit-bytes", "0"]));
    assert_eq!(by_flag, out_of_range);

    let line = configuration_error(resonance().env("CLERK_SECRET_KEY", "pk_live_c2VjcmV0"));
    assert_eq!(
        line,
        "configuration error: CLERK_SECRET_KEY: expected a key starting with sk_"
    );
    let line = configuration_error(
        resonance()
            .env("RESONANCE_VOICE_SAMPLE_MIN_SECS", "60")
            .env("RESONANCE_VOICE_SAMPLE_MAX_SECS", "30"),
    );
    assert!(
        line.contains("RESONANCE_VOICE_SAMPLE_MAX_SECS: 30 is below"),
        "{line}"
    );
}

#[test]
fn a_blank_variable_takes_the_default() {
    // docker-compose passes `${VAR:-}` as an empty value.
    let output = resonance()
        .env("RESONANCE_WORKERS", "")
        .env("RESONANCE_BODY_LIMIT_BYTES", " ")
        .env("CLERK_WEBHOOK_SECRET", "")
        .arg("openapi")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn openapi_command_prints_the_committed_contract() {
    let output = resonance().arg("openapi").output().unwrap();
    assert!(output.status.success());
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json"),
    )
    .unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), committed);
}

#[test]
fn migrate_up_status_and_production_refusing_a_stale_schema() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let status = resonance()
        .env("DATABASE_URL", &url)
        .args(["migrate", "status"])
        .output()
        .unwrap();
    assert!(status.status.success());
    let listing = String::from_utf8(status.stdout).unwrap();
    assert!(
        listing.lines().all(|l| l.starts_with("pending")),
        "{listing}"
    );

    // Production does not migrate by itself.
    let refused = resonance()
        .env("DATABASE_URL", &url)
        .env("RESONANCE_ENV", "production")
        .env("CLERK_JWKS_URL", "http://127.0.0.1:9/jwks.json")
        .env("CLERK_ISSUER", "http://127.0.0.1:9")
        .env("RESONANCE_BIND", "127.0.0.1:0")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8(refused.stderr)
            .unwrap()
            .contains("migrate up")
    );

    let up = resonance()
        .env("DATABASE_URL", &url)
        .args(["migrate", "up"])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let listing = String::from_utf8(
        resonance()
            .env("DATABASE_URL", &url)
            .args(["migrate", "status"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        !listing.is_empty() && listing.lines().all(|l| l.starts_with("applied")),
        "{listing}"
    );
}

#[test]
fn sigterm_stops_serving_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = resonance()
        .env("DATABASE_URL", sqlite_url(&dir))
        .env("RESONANCE_DATA_DIR", dir.path())
        .env("RESONANCE_BIND", format!("127.0.0.1:{port}"))
        .env("RESONANCE_SHUTDOWN_TIMEOUT_SECS", "2")
        .arg("serve")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let started = Instant::now();
    let mut healthy = false;
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .unwrap();
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            if reply.starts_with("HTTP/1.1 200") {
                healthy = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(healthy, "the server came up");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "stopped within the shutdown timeout"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "no longer accepting"
    );
}
