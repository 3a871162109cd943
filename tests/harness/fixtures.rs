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

/// What decoding audio found: the samples per second a player outputs and how long it lasts.
#[derive(Debug, Clone, Copy)]
pub struct Decoded {
    pub sample_rate: u32,
    pub seconds: f64,
}

/// Decodes a generation's audio in `format` (every packet, with real decoders: symphonia
/// for mp3, flac and wav, libopus for Opus; `pcm` is raw 16-bit samples at `pcm_rate`).
pub fn decode(format: &str, bytes: &[u8], pcm_rate: u32) -> Decoded {
    match format {
        "pcm" => {
            assert_eq!(bytes.len() % 2, 0, "whole 16-bit samples");
            Decoded {
                sample_rate: pcm_rate,
                seconds: bytes.len() as f64 / 2.0 / f64::from(pcm_rate),
            }
        }
        "opus" => decode_ogg_opus(bytes),
        _ => decode_with_symphonia(format, bytes),
    }
}

fn decode_with_symphonia(extension: &str, bytes: &[u8]) -> Decoded {
    use symphonia::core::{
        codecs::DecoderOptions, errors::Error, formats::FormatOptions, io::MediaSourceStream,
        meta::MetadataOptions, probe::Hint,
    };
    let source = MediaSourceStream::new(
        Box::new(std::io::Cursor::new(bytes.to_vec())),
        Default::default(),
    );
    let mut hint = Hint::new();
    hint.with_extension(extension);
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{extension}: not a readable file: {e}"));
    let mut reader = probed.format;
    let track = reader.default_track().expect("an audio track").clone();
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .unwrap_or_else(|e| panic!("{extension}: no decoder: {e}"));
    let sample_rate = track.codec_params.sample_rate.expect("a sample rate");
    let mut frames = 0u64;
    loop {
        match reader.next_packet() {
            Ok(packet) if packet.track_id() == track.id => {
                let decoded = decoder
                    .decode(&packet)
                    .unwrap_or_else(|e| panic!("{extension}: a packet does not decode: {e}"));
                frames += decoded.frames() as u64;
            }
            Ok(_) => {}
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("{extension}: reading packets failed: {e}"),
        }
    }
    Decoded {
        sample_rate,
        seconds: frames as f64 / f64::from(sample_rate),
    }
}

/// Ogg Opus (RFC 7845): every packet decoded at 48 kHz; the length is what the last page's
/// granule position keeps after the pre-skip, checked against what really decoded.
fn decode_ogg_opus(bytes: &[u8]) -> Decoded {
    let mut reader = ogg::PacketReader::new(std::io::Cursor::new(bytes.to_vec()));
    let head = reader
        .read_packet()
        .expect("ogg")
        .expect("an OpusHead packet");
    assert_eq!(&head.data[..8], b"OpusHead");
    let pre_skip = u64::from(u16::from_le_bytes([head.data[10], head.data[11]]));
    let tags = reader
        .read_packet()
        .expect("ogg")
        .expect("an OpusTags packet");
    assert_eq!(&tags.data[..8], b"OpusTags");
    let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).expect("an Opus decoder");
    let mut pcm = vec![0i16; 5760];
    let (mut decoded, mut granule) = (0u64, 0u64);
    while let Some(packet) = reader.read_packet().expect("ogg pages") {
        decoded += decoder
            .decode(&packet.data, &mut pcm, false)
            .expect("an Opus packet decodes") as u64;
        granule = packet.absgp_page();
    }
    assert!(
        granule <= decoded,
        "granule {granule} beyond the {decoded} decoded samples"
    );
    Decoded {
        sample_rate: 48_000,
        seconds: granule.saturating_sub(pre_skip) as f64 / 48_000.0,
    }
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
