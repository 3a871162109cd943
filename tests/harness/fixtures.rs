//! What the integration tests share besides the running App: tokens and ids, test audio,
//! multipart bodies, resources created through the HTTP API, and the audio the App stored.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{Reply, TestApp, TokenSpec};

// ---- time, tokens and ids ------------------------------------------------------------------

/// The current time in Unix seconds (as tokens and webhook timestamps carry it).
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An admin of organization `org`.
pub fn admin(org: &str) -> TokenSpec {
    TokenSpec::org(org, "admin")
}

/// The `id` of a resource.
pub fn id(resource: &Value) -> String {
    resource["id"]
        .as_str()
        .expect("a resource with an id")
        .to_owned()
}

/// The ids on a list page (`{"data": [...]}`), in order.
pub fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("a list page")
        .iter()
        .map(id)
        .collect()
}

// ---- audio ---------------------------------------------------------------------------------

/// A mono 16-bit PCM WAV: a tone of `secs` seconds at `rate` Hz.
pub fn wav(rate: u32, secs: f64) -> Vec<u8> {
    let n = (rate as f64 * secs) as usize;
    let data: Vec<u8> = (0..n)
        .flat_map(|i| (((i as f64 * 0.07).sin() * 9000.0) as i16).to_le_bytes())
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// (sample rate, seconds) read from a WAV's header and data chunk.
pub fn wav_facts(bytes: &[u8]) -> (u32, f64) {
    assert_eq!(&bytes[0..4], b"RIFF", "a RIFF file");
    assert_eq!(&bytes[8..12], b"WAVE", "a WAVE file");
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut pos = 12;
    let (mut rate, mut byte_rate) = (0, 0);
    while pos + 8 <= bytes.len() {
        let size = u32_at(pos + 4) as usize;
        match &bytes[pos..pos + 4] {
            b"fmt " => {
                rate = u32_at(pos + 12);
                byte_rate = u32_at(pos + 16);
            }
            b"data" => {
                assert!(rate > 0 && byte_rate > 0, "fmt chunk before data");
                assert_eq!(size, bytes.len() - pos - 8, "data size matches the file");
                return (rate, size as f64 / byte_rate as f64);
            }
            _ => {}
        }
        pos += 8 + size + (size & 1);
    }
    panic!("no data chunk");
}

/// Fails the test unless espeak-ng is installed (the default speech provider runs it).
pub fn require_espeak() {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join("espeak-ng").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "these tests synthesize real speech: install espeak-ng (apt-get install espeak-ng)"
    );
}

// ---- multipart bodies ----------------------------------------------------------------------

/// The boundary of every multipart body the tests send.
pub const BOUNDARY: &str = "resonance-test-boundary-7c1f";

/// A multipart/form-data body (boundary [`BOUNDARY`]) with text fields and an optional file
/// in the `sample` part: (file name, content type, bytes).
pub fn form(fields: &[(&str, &str)], sample: Option<(&str, &str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((file_name, content_type, bytes)) = sample {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"sample\"; filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Posts a [`form`] body to `POST /v1/voices`, the one multipart endpoint.
pub async fn post_form(app: &TestApp, token: &str, body: Vec<u8>) -> Reply {
    Reply::from(
        app.request(reqwest::Method::POST, "/v1/voices", token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

// ---- resources, created through the API ----------------------------------------------------

/// `POST {path}` must answer 201; returns the created resource.
async fn create(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let reply = app.post(path, token, body).await;
    assert_eq!(reply.status, 201, "POST {path}: {}", reply.json);
    reply.json
}

/// A project named `name`.
pub async fn create_project(app: &TestApp, token: &str, name: &str) -> Value {
    create(app, "/v1/projects", token, json!({ "name": name })).await
}

/// A task from `body` (`title`, `project_id`, …).
pub async fn create_task(app: &TestApp, token: &str, body: Value) -> Value {
    create(app, "/v1/tasks", token, body).await
}

/// A generation from `body` (`voice_id`, `text`, …).
pub async fn create_generation(app: &TestApp, token: &str, body: Value) -> Value {
    create(app, "/v1/generations", token, body).await
}

/// A custom English narration voice named `name` with `sample` (a WAV) as its sample.
pub async fn create_voice(app: &TestApp, token: &str, name: &str, sample: &[u8]) -> Value {
    let reply = post_form(
        app,
        token,
        form(
            &[
                ("name", name),
                ("description", "A test voice"),
                ("category", "narration"),
                ("language", "en-us"),
                ("gender", "female"),
            ],
            Some(("me.wav", "audio/wav", sample)),
        ),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.json);
    reply.json
}

/// The first system voice whose name matches `name`.
pub async fn system_voice(app: &TestApp, token: &str, name: &str) -> Value {
    let reply = app
        .get(&format!("/v1/voices?variant=system&q={name}"), token)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json["data"][0].clone()
}

// ---- what the App stored ------------------------------------------------------------------

/// The first column of the row `sql` selects, as text: `None` without a row, `Some(None)` for
/// NULL. Read as the schema owner, so row-level security hides nothing.
pub async fn stored(app: &TestApp, sql: &str) -> Option<Option<String>> {
    let row = app.db.query_one(sql).await?;
    Some(row.try_get_by_index::<Option<String>>(0).unwrap())
}

/// The integer `sql` selects (first column, first row), read as the schema owner.
pub async fn scalar(app: &TestApp, sql: &str) -> i64 {
    let row = app.db.query_one(sql).await.expect("a row");
    row.try_get_by_index::<i64>(0).unwrap()
}

/// How many rows of `table` belong to `tenant`.
pub async fn count_for(app: &TestApp, table: &str, tenant: &str) -> i64 {
    scalar(
        app,
        &format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = '{tenant}'"),
    )
    .await
}

// ---- audio the App serves and stores -------------------------------------------------------

/// `GET path` with a `Range` header.
pub async fn get_with_range(app: &TestApp, path: &str, token: &str, range: &str) -> Reply {
    Reply::from(
        app.request(reqwest::Method::GET, path, token)
            .header("range", range)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Files under `dir`, recursively (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Every object of the local audio store (voice samples and generated audio).
pub fn audio_files(app: &TestApp) -> Vec<PathBuf> {
    files_under(&app.data_path().join("audio"))
}

/// How many objects the local audio store holds for `tenant`.
pub fn stored_objects(app: &TestApp, tenant: &str) -> usize {
    files_under(&app.data_path().join("audio").join("tenants").join(tenant)).len()
}
