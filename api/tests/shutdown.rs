//! SIGTERM under load, as an operator's rolling deploy does it: the real binary serves eight
//! keep-alive clients listing tasks, receives SIGTERM, and every request a client had fully
//! sent before the signal must get its complete response. Keep-alive connections are closed
//! after their current response (`Connection: close`), new connections are refused once the
//! process has gone, and it exits 0 within the shutdown timeout.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

const CLIENTS: usize = 16;

/// A fresh PostgreSQL database when `TEST_DATABASE_URL` is set (dropped at the end), else a
/// SQLite file: the URL to serve from.
struct TestDatabase {
    url: String,
    drop_sql: Option<(String, String)>,
}

impl TestDatabase {
    fn new(dir: &tempfile::TempDir) -> TestDatabase {
        let sqlite = || TestDatabase {
            url: format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("db.sqlite").display()
            ),
            drop_sql: None,
        };
        let Some(admin) = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            return sqlite();
        };
        let name = format!("shutdown_{}", std::process::id());
        run_sql(&admin, &format!("DROP DATABASE IF EXISTS {name}"));
        run_sql(&admin, &format!("CREATE DATABASE {name}"));
        let (base, _) = admin.rsplit_once('/').expect("a database URL");
        TestDatabase {
            url: format!("{base}/{name}"),
            drop_sql: Some((
                admin,
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin, sql)) = &self.drop_sql {
            run_sql(admin, sql);
        }
    }
}

fn run_sql(url: &str, sql: &str) {
    use sea_orm::ConnectionTrait;
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = sea_orm::Database::connect(url)
            .await
            .expect("PostgreSQL answers");
        db.execute_unprepared(sql).await.expect(sql);
        db.close().await.ok();
    });
}

fn resonance(dir: &tempfile::TempDir, database: &TestDatabase) -> Command {
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
        "RESONANCE_CORS_ORIGINS",
    ] {
        command.env_remove(var);
    }
    command
        .env("RUST_LOG", "warn")
        .env("DATABASE_URL", &database.url)
        .env("RESONANCE_DATA_DIR", dir.path());
    command
}

/// One HTTP/1.1 exchange on `stream`: the status and whether the server will close the
/// connection after it. `Err` when the connection ended before a complete response.
fn exchange(stream: &mut BufReader<TcpStream>, request: &[u8]) -> std::io::Result<(u16, bool)> {
    stream.get_mut().write_all(request)?;
    let mut status_line = String::new();
    if stream.read_line(&mut status_line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let (mut length, mut close) = (0usize, false);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("content-length:") {
            length = value
                .trim()
                .parse()
                .map_err(|_| std::io::ErrorKind::InvalidData)?;
        }
        if line == "connection: close" {
            close = true;
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok((status, close))
}

fn wait_until_serving(port: u16) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port))
            && exchange(
                &mut BufReader::new(stream),
                b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
            )
            .is_ok_and(|(status, _)| status == 200)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server came up");
}

fn exit_status(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "exited within the shutdown timeout"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    answered: usize,
    closed_by_server: usize,
    /// Requests fully written before the signal that got no complete response.
    dropped_before_signal: usize,
}

#[test]
fn sigterm_under_keep_alive_load_answers_every_request_sent_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::new(&dir);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = {
        let output = resonance(&dir, &database)
            .args(["dev", "token", "--org", "org_shutdown", "--role", "admin"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let mut child = resonance(&dir, &database)
        .env("RESONANCE_BIND", format!("127.0.0.1:{port}"))
        .env("RESONANCE_SHUTDOWN_TIMEOUT_SECS", "10")
        .env("RESONANCE_WORKERS", "2")
        .arg("serve")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_serving(port);

    let request = format!(
        "GET /v1/tasks?limit=50 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n"
    )
    .into_bytes();
    let signalled_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (request, signalled_at, stop) =
                (request.clone(), signalled_at.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut tally = Tally::default();
                'connections: while !stop.load(Ordering::SeqCst) {
                    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
                        // Refused: the server has gone, as it should once it stopped.
                        break;
                    };
                    stream
                        .set_read_timeout(Some(Duration::from_secs(15)))
                        .unwrap();
                    let mut stream = BufReader::new(stream);
                    loop {
                        let written = Instant::now();
                        match exchange(&mut stream, &request) {
                            Ok((status, close)) => {
                                assert_eq!(status, 200, "a listed page");
                                tally.answered += 1;
                                if close {
                                    tally.closed_by_server += 1;
                                    continue 'connections;
                                }
                            }
                            Err(_) => {
                                let signal = *signalled_at.lock().unwrap();
                                if signal.is_none_or(|at| written < at) {
                                    tally.dropped_before_signal += 1;
                                }
                                continue 'connections;
                            }
                        }
                    }
                }
                tally
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    *signalled_at.lock().unwrap() = Some(Instant::now());
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = exit_status(&mut child, Duration::from_secs(12));
    stop.store(true, Ordering::SeqCst);
    let tallies: Vec<Tally> = clients.into_iter().map(|c| c.join().unwrap()).collect();

    let answered: usize = tallies.iter().map(|t| t.answered).sum();
    let closed: usize = tallies.iter().map(|t| t.closed_by_server).sum();
    let dropped: usize = tallies.iter().map(|t| t.dropped_before_signal).sum();
    eprintln!("answered {answered}, closed by the server {closed}, dropped {dropped}");
    assert!(
        answered > CLIENTS * 5,
        "the clients were served before the signal"
    );
    assert_eq!(
        dropped, 0,
        "requests sent before SIGTERM that got no response"
    );
    assert!(
        closed >= 1,
        "keep-alive connections were closed with Connection: close"
    );
    assert_eq!(status.code(), Some(0));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "no longer accepting"
    );
}
