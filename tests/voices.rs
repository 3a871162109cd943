//! Voices and speech generations: the system library, custom voices with checked samples,
//! real espeak-ng synthesis, an OpenAI-compatible provider stand-in, tenant isolation, Range
//! streaming and the concurrency limit.

use std::{
    net::TcpListener,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use resonance_api::config::TtsProvider;
use resonance_tests::{Reply, TestApp, TokenSpec};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Test audio and helpers

/// A mono 16-bit PCM WAV: a tone of `secs` seconds.
fn wav(rate: u32, secs: f64) -> Vec<u8> {
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
fn wav_facts(bytes: &[u8]) -> (u32, f64) {
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

const BOUNDARY: &str = "resonance-test-boundary-7c1f";

/// A multipart/form-data body with text fields and an optional sample file.
fn form(fields: &[(&str, &str)], sample: Option<(&str, &str, &[u8])>) -> Vec<u8> {
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

async fn post_form(app: &TestApp, token: &str, body: Vec<u8>) -> Reply {
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

async fn create_voice(app: &TestApp, token: &str, name: &str, sample: &[u8]) -> Value {
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

async fn get_with_range(app: &TestApp, path: &str, token: &str, range: &str) -> Reply {
    Reply::from(
        app.request(reqwest::Method::GET, path, token)
            .header("range", range)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
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

fn audio_files(app: &TestApp) -> Vec<std::path::PathBuf> {
    files_under(&app.data_path().join("audio"))
}

async fn system_voice(app: &TestApp, token: &str, name: &str) -> Value {
    let reply = app
        .get(&format!("/v1/voices?variant=system&q={name}"), token)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json["data"][0].clone()
}

fn require_espeak() {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join("espeak-ng").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "these tests synthesize real speech: install espeak-ng (apt-get install espeak-ng)"
    );
}

// ---------------------------------------------------------------------------------------------
// An OpenAI-compatible speech API on loopback

#[derive(Default)]
struct SpeechStandIn {
    calls: AtomicUsize,
    last: std::sync::Mutex<Option<(Option<String>, Value)>>,
    delay: std::sync::Mutex<Duration>,
}

async fn speech_endpoint(
    req: HttpRequest,
    state: web::Data<SpeechStandIn>,
    body: web::Json<Value>,
) -> HttpResponse {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    *state.last.lock().unwrap() = Some((auth, body.0.clone()));
    let input = body["input"].as_str().unwrap_or_default().to_owned();
    let delay = *state.delay.lock().unwrap();
    if input.contains("slow") {
        tokio::time::sleep(delay).await;
    }
    if input.contains("fail") {
        return HttpResponse::InternalServerError()
            .json(json!({"error": {"message": "model overloaded"}}));
    }
    if input.contains("garbage") {
        return HttpResponse::Ok()
            .content_type("audio/wav")
            .body("this is not audio at all, only text");
    }
    HttpResponse::Ok()
        .content_type("audio/wav")
        .body(wav(24_000, 0.5 + input.len() as f64 / 50.0))
}

async fn start_speech_stand_in(delay: Duration) -> (String, Arc<SpeechStandIn>) {
    let state = Arc::new(SpeechStandIn::default());
    *state.delay.lock().unwrap() = delay;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let data = web::Data::from(state.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/audio/speech", web::post().to(speech_endpoint))
    })
    .workers(2)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (base, state)
}

async fn spawn_with_http_provider(
    delay: Duration,
    timeout_secs: u64,
    per_tenant: usize,
) -> (TestApp, Arc<SpeechStandIn>) {
    let (base, stand_in) = start_speech_stand_in(delay).await;
    let app = TestApp::spawn_with(move |args| {
        args.tts_provider = TtsProvider::OpenAiCompatible;
        args.tts_base_url = Some(base);
        args.tts_api_key = Some("sk-speech-test".into());
        args.tts_model = "tts-test".into();
        args.tts_timeout_secs = timeout_secs;
        args.tts_max_per_tenant = per_tenant;
    })
    .await;
    (app, stand_in)
}

// ---------------------------------------------------------------------------------------------
// System voices

#[tokio::test]
async fn system_voices_are_shared_filterable_and_read_only() {
    let app = TestApp::spawn().await;
    let a = app.token(TokenSpec::org("org_a", "admin"));
    let b = app.token(TokenSpec::org("org_b", "member"));

    let all = app.get("/v1/voices?limit=200", &a).await;
    assert_eq!(all.status, 200, "{}", all.json);
    let voices = all.json["data"].as_array().unwrap();
    assert!(voices.len() >= 12, "a useful library: {}", voices.len());
    assert!(voices.iter().all(|v| v["variant"] == "system"));
    let languages: std::collections::BTreeSet<&str> = voices
        .iter()
        .filter_map(|v| v["language"].as_str())
        .collect();
    for language in [
        "en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "it-IT", "pt-BR",
    ] {
        assert!(languages.contains(language), "{language} in {languages:?}");
    }
    assert!(voices.iter().any(|v| v["gender"] == "female"));
    assert!(voices.iter().any(|v| v["gender"] == "male"));
    assert_eq!(
        app.get("/v1/voices?limit=200", &b).await.json["data"],
        all.json["data"]
    );

    // Filters and pagination.
    let english = app.get("/v1/voices?language=en", &a).await;
    let english = english.json["data"].as_array().unwrap().clone();
    assert!(english.len() >= 4);
    assert!(
        english
            .iter()
            .all(|v| v["language"].as_str().unwrap().starts_with("en-"))
    );
    let british = app.get("/v1/voices?language=en-gb", &a).await;
    assert!(
        british.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["language"] == "en-GB")
    );
    let news = app.get("/v1/voices?category=news", &a).await;
    assert!(
        news.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["category"] == "news")
    );
    let aria = app.get("/v1/voices?q=ARI", &a).await;
    assert_eq!(aria.json["data"][0]["name"], "Aria");
    let first = app.get("/v1/voices?limit=5", &a).await;
    assert_eq!(first.json["data"].as_array().unwrap().len(), 5);
    let cursor = first.json["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(&format!("/v1/voices?limit=5&cursor={cursor}"), &a)
        .await;
    assert_eq!(second.json["data"][0]["id"], voices[5]["id"]);
    app.get("/v1/voices?variant=shared", &a)
        .await
        .assert_problem(422, "validation_failed");
    app.get("/v1/voices?category=opera", &a)
        .await
        .assert_problem(422, "validation_failed");

    // Readable by id, writable by no one, with no sample to stream.
    let id = voices[0]["id"].as_str().unwrap();
    let one = app.get(&format!("/v1/voices/{id}"), &b).await;
    assert_eq!(one.status, 200);
    assert!(one.json["created_by_user_id"].is_null());
    app.patch(&format!("/v1/voices/{id}"), &a, json!({"name": "Mine now"}))
        .await
        .assert_problem(403, "forbidden");
    app.delete(&format!("/v1/voices/{id}"), &a)
        .await
        .assert_problem(403, "forbidden");
    app.get(&format!("/v1/voices/{id}/sample"), &a)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        app.get(&format!("/v1/voices/{id}"), &a).await.json["name"],
        voices[0]["name"]
    );
    // Wrong method on a known path.
    let put = Reply::from(
        app.request(reqwest::Method::PUT, "/v1/voices", &a)
            .send()
            .await
            .unwrap(),
    )
    .await;
    put.assert_problem(405, "method_not_allowed");
}

// ---------------------------------------------------------------------------------------------
// Custom voices

#[tokio::test]
async fn custom_voice_lifecycle_sample_ranges_and_delete() {
    let app = TestApp::spawn().await;
    let admin = app.token(TokenSpec::org("org_a", "admin"));
    let member = app.token(TokenSpec::org("org_a", "member").user("user_bob"));
    let system_rows = app.db.count("voices").await;

    let sample = wav(16_000, 2.0);
    let created = create_voice(&app, &member, "Narrator Nell", &sample).await;
    assert_eq!(created["variant"], "custom");
    assert_eq!(created["language"], "en-US");
    assert_eq!(created["category"], "narration");
    assert_eq!(created["gender"], "female");
    assert_eq!(created["created_by_user_id"], "user_bob");
    assert_eq!(created["sample"]["content_type"], "audio/wav");
    assert_eq!(created["sample"]["size_bytes"], sample.len());
    assert_eq!(created["sample"]["duration_ms"], 2000);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["sample"]["url"], format!("/v1/voices/{id}/sample"));
    assert_eq!(app.db.count("voices").await, system_rows + 1);
    assert_eq!(audio_files(&app).len(), 1);

    // The list puts custom voices first; filters see it.
    let list = app.get("/v1/voices", &admin).await;
    assert_eq!(list.json["data"][0]["id"], id.as_str());
    let custom = app.get("/v1/voices?variant=custom", &admin).await;
    assert_eq!(custom.json["data"].as_array().unwrap().len(), 1);

    // The sample, whole and in ranges.
    let path = format!("/v1/voices/{id}/sample");
    let whole = app.get(&path, &admin).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.bytes, sample);
    assert_eq!(whole.header("content-type"), Some("audio/wav"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        whole.header("content-length"),
        Some(sample.len().to_string().as_str())
    );
    let len = sample.len();
    for (range, expected, content_range) in [
        ("bytes=10-99", 10..100, format!("bytes 10-99/{len}")),
        ("bytes=0-0", 0..1, format!("bytes 0-0/{len}")),
        (
            "bytes=-16",
            len - 16..len,
            format!("bytes {}-{}/{len}", len - 16, len - 1),
        ),
        (
            "bytes=60000-",
            60000..len,
            format!("bytes 60000-{}/{len}", len - 1),
        ),
        (
            "bytes=100-99999999",
            100..len,
            format!("bytes 100-{}/{len}", len - 1),
        ),
    ] {
        let part = get_with_range(&app, &path, &admin, range).await;
        assert_eq!(part.status, 206, "{range}");
        assert_eq!(part.bytes, &sample[expected.clone()], "{range}");
        assert_eq!(
            part.header("content-range"),
            Some(content_range.as_str()),
            "{range}"
        );
        assert_eq!(
            part.header("content-length"),
            Some(expected.len().to_string().as_str())
        );
    }
    let beyond = get_with_range(&app, &path, &admin, &format!("bytes={len}-")).await;
    beyond.assert_problem(416, "range_not_satisfiable");
    assert_eq!(
        beyond.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );

    // Update details: ETag, If-Match, validation.
    let one = app.get(&format!("/v1/voices/{id}"), &admin).await;
    let etag = one.header("etag").unwrap().to_owned();
    let renamed = app
        .patch(
            &format!("/v1/voices/{id}"),
            &member,
            json!({"name": "Nell", "description": null, "language": "de", "gender": "male"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.json);
    assert_eq!(renamed.json["name"], "Nell");
    assert!(renamed.json["description"].is_null());
    assert_eq!(renamed.json["language"], "de");
    let stale = Reply::from(
        app.request(reqwest::Method::PATCH, &format!("/v1/voices/{id}"), &admin)
            .header("if-match", etag)
            .json(&json!({"name": "Again"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    stale.assert_problem(412, "precondition_failed");
    app.patch(
        &format!("/v1/voices/{id}"),
        &admin,
        json!({"language": "not a language"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.patch(&format!("/v1/voices/{id}"), &admin, json!({"sample": "x"}))
        .await
        .assert_problem(422, "validation_failed");

    // Members may not delete voices; admins may, and the sample goes with it.
    app.delete(&format!("/v1/voices/{id}"), &member)
        .await
        .assert_problem(403, "forbidden");
    let deleted = app.delete(&format!("/v1/voices/{id}"), &admin).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(app.db.count("voices").await, system_rows);
    assert!(audio_files(&app).is_empty(), "{:?}", audio_files(&app));
    app.get(&path, &admin)
        .await
        .assert_problem(404, "not_found");
    app.get(&format!("/v1/voices/{id}"), &admin)
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn invalid_samples_are_rejected_and_nothing_is_stored() {
    let app = TestApp::spawn_with(|args| {
        args.voice_sample_max_bytes = 65536;
        args.voice_sample_min_secs = 1;
        args.voice_sample_max_secs = 30;
    })
    .await;
    let token = app.token(TokenSpec::org("org_a", "admin"));
    let system_rows = app.db.count("voices").await;
    let fields = [("name", "Bad"), ("language", "en-US")];
    let good = wav(8_000, 2.0);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "text dressed up as a WAV",
            b"RIFX this is just some text pretending to be audio, nothing more".to_vec(),
            "not a supported audio file",
        ),
        (
            "random bytes",
            vec![0x5A; 4096],
            "not a supported audio file",
        ),
        (
            "truncated WAV",
            good[..good.len() / 2].to_vec(),
            "truncated",
        ),
        ("a WAV header alone", good[..30].to_vec(), "truncated"),
        ("too large", wav(16_000, 2.5), "larger than 65536 bytes"),
        ("too short", wav(8_000, 0.4), "at least 1 s"),
        ("empty", vec![], "empty"),
    ];
    for (what, bytes, expected) in cases {
        let reply = post_form(
            &app,
            &token,
            form(&fields, Some(("voice.wav", "audio/wav", &bytes))),
        )
        .await;
        let problem = reply.assert_problem(422, "validation_failed");
        let errors = problem["errors"].as_array().unwrap();
        assert!(
            errors.iter().any(
                |e| e["field"] == "sample" && e["message"].as_str().unwrap().contains(expected)
            ),
            "{what}: {problem}"
        );
    }

    // Missing and invalid fields are named.
    let reply = post_form(
        &app,
        &token,
        form(&[("category", "opera"), ("gender", "robot")], None),
    )
    .await;
    let problem = reply.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for field in ["name", "language", "category", "gender", "sample"] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    // A form with far more parts than it needs.
    let many: Vec<(&str, &str)> = std::iter::repeat_n(("name", "again"), 40).collect();
    post_form(&app, &token, form(&many, None))
        .await
        .assert_problem(422, "validation_failed");
    // Not multipart at all.
    app.post("/v1/voices", &token, json!({"name": "x"}))
        .await
        .assert_problem(415, "unsupported_media_type");

    assert_eq!(app.db.count("voices").await, system_rows);
    assert!(audio_files(&app).is_empty(), "{:?}", audio_files(&app));

    // The same form with a good sample is accepted.
    let ok = post_form(
        &app,
        &token,
        form(&fields_ok(), Some(("x.bin", "text/plain", &good))),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.json);
    assert_eq!(
        ok.json["sample"]["content_type"], "audio/wav",
        "typed by content, not by name"
    );
}

fn fields_ok() -> Vec<(&'static str, &'static str)> {
    vec![("name", "Good"), ("language", "fr-fr")]
}

// ---------------------------------------------------------------------------------------------
// Real synthesis with espeak-ng

#[tokio::test]
async fn espeak_synthesizes_real_speech_that_streams_with_ranges() {
    require_espeak();
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let voice = system_voice(&app, &token, "Aria").await;

    let short = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "Hello there."}),
        )
        .await;
    assert_eq!(short.status, 201, "{}", short.json);
    assert_eq!(short.json["status"], "succeeded");
    assert_eq!(short.json["provider"], "espeak");
    assert_eq!(short.json["format"], "wav");
    assert_eq!(short.json["content_type"], "audio/wav");
    let id = short.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        short.json["audio_url"],
        format!("/v1/generations/{id}/audio")
    );
    assert_eq!(
        short.header("location"),
        Some(format!("/v1/generations/{id}").as_str())
    );

    let long = app
        .post(
            "/v1/generations",
            &token,
            json!({
                "voice_id": voice["id"],
                "text": "Hello there. This sentence is a good deal longer, so the speech that \
                         comes out of it must last noticeably longer than the greeting alone.",
                "speed": 1.2,
                "pitch": 10,
            }),
        )
        .await;
    assert_eq!(long.status, 201, "{}", long.json);

    let audio = app
        .get(&format!("/v1/generations/{id}/audio"), &token)
        .await;
    assert_eq!(audio.status, 200);
    assert_eq!(audio.header("content-type"), Some("audio/wav"));
    assert_eq!(audio.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        audio.header("content-length"),
        Some(audio.bytes.len().to_string().as_str())
    );
    let (rate, short_secs) = wav_facts(&audio.bytes);
    assert!(rate >= 8_000, "sample rate {rate}");
    assert!(short_secs > 0.2, "duration {short_secs}");
    assert_eq!(short.json["size_bytes"], audio.bytes.len());
    assert_eq!(short.json["sample_rate"], rate);
    assert!((short.json["duration_ms"].as_f64().unwrap() / 1000.0 - short_secs).abs() < 0.01);

    let long_id = long.json["id"].as_str().unwrap();
    let long_audio = app
        .get(&format!("/v1/generations/{long_id}/audio"), &token)
        .await;
    let (_, long_secs) = wav_facts(&long_audio.bytes);
    assert!(long_secs > short_secs * 2.0, "{long_secs} vs {short_secs}");

    // Ranges return exactly the requested bytes.
    let path = format!("/v1/generations/{id}/audio");
    let part = get_with_range(&app, &path, &token, "bytes=0-43").await;
    assert_eq!(part.status, 206);
    assert_eq!(part.bytes, &audio.bytes[..44]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 0-43/{}", audio.bytes.len()).as_str())
    );
    let tail = get_with_range(&app, &path, &token, "bytes=-100").await;
    assert_eq!(tail.bytes, &audio.bytes[audio.bytes.len() - 100..]);
    get_with_range(&app, &path, &token, "bytes=999999999-")
        .await
        .assert_problem(416, "range_not_satisfiable");

    // List, filter, get, delete.
    let list = app.get("/v1/generations?limit=1", &token).await;
    assert_eq!(list.json["data"][0]["id"], long_id);
    let next = list.json["next_cursor"].as_str().unwrap().to_owned();
    let page2 = app
        .get(&format!("/v1/generations?limit=1&cursor={next}"), &token)
        .await;
    assert_eq!(page2.json["data"][0]["id"], id.as_str());
    let by_voice = app
        .get(
            &format!("/v1/generations?voice_id={}", voice["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(by_voice.json["data"].as_array().unwrap().len(), 2);
    assert_eq!(audio_files(&app).len(), 2);
    assert_eq!(
        app.delete(&format!("/v1/generations/{id}"), &token)
            .await
            .status,
        204
    );
    assert_eq!(audio_files(&app).len(), 1);
    app.get(&path, &token)
        .await
        .assert_problem(404, "not_found");
    app.get(&format!("/v1/generations/{id}"), &token)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(app.db.count("generations").await, 1);
}

#[tokio::test]
async fn generation_input_is_validated() {
    require_espeak();
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "admin"));
    let voice = system_voice(&app, &token, "Felix").await;
    let too_long = "a".repeat(5001);
    for body in [
        json!({"voice_id": voice["id"], "text": "   "}),
        json!({"voice_id": voice["id"], "text": too_long}),
        json!({"voice_id": voice["id"], "text": "Hi", "speed": 3.0}),
        json!({"voice_id": voice["id"], "text": "Hi", "pitch": 80}),
        json!({"voice_id": voice["id"], "text": "Hi", "format": "mp3"}),
        json!({"voice_id": voice["id"], "text": "Hi", "format": "aiff"}),
        json!({"voice_id": "0190a000-0000-7000-8000-00000000ffff", "text": "Hi"}),
        json!({"text": "Hi"}),
    ] {
        app.post("/v1/generations", &token, body.clone())
            .await
            .assert_problem(422, "validation_failed");
    }
    let reader = app.token(TokenSpec::org("org_a", "reader"));
    app.post(
        "/v1/generations",
        &reader,
        json!({"voice_id": voice["id"], "text": "Hi"}),
    )
    .await
    .assert_problem(403, "forbidden");
    assert_eq!(app.db.count("generations").await, 0);
    assert!(audio_files(&app).is_empty());
    // 5 000 characters exactly is accepted.
    let max = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": format!("Ja{}ja", " ".repeat(4996))}),
        )
        .await;
    assert_eq!(max.status, 201, "{}", max.json);
}

// ---------------------------------------------------------------------------------------------
// Isolation

#[tokio::test]
async fn another_tenants_voices_and_generations_are_invisible() {
    require_espeak();
    let app = TestApp::spawn().await;
    let a = app.token(TokenSpec::org("org_a", "admin"));
    let b = app.token(TokenSpec::org("org_b", "admin").user("user_bob"));

    let voice = create_voice(&app, &a, "Private voice", &wav(16_000, 1.5)).await;
    let voice_id = voice["id"].as_str().unwrap().to_owned();
    let made = app
        .post(
            "/v1/generations",
            &a,
            json!({"voice_id": voice_id, "text": "Only for org A."}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.json);
    assert_eq!(made.json["voice_id"], voice_id.as_str());
    let generation_id = made.json["id"].as_str().unwrap().to_owned();

    for path in [
        format!("/v1/voices/{voice_id}"),
        format!("/v1/voices/{voice_id}/sample"),
        format!("/v1/generations/{generation_id}"),
        format!("/v1/generations/{generation_id}/audio"),
    ] {
        app.get(&path, &b).await.assert_problem(404, "not_found");
        get_with_range(&app, &path, &b, "bytes=0-10")
            .await
            .assert_problem(404, "not_found");
    }
    app.patch(
        &format!("/v1/voices/{voice_id}"),
        &b,
        json!({"name": "Stolen"}),
    )
    .await
    .assert_problem(404, "not_found");
    app.delete(&format!("/v1/voices/{voice_id}"), &b)
        .await
        .assert_problem(404, "not_found");
    app.delete(&format!("/v1/generations/{generation_id}"), &b)
        .await
        .assert_problem(404, "not_found");
    app.post(
        "/v1/generations",
        &b,
        json!({"voice_id": voice_id, "text": "Borrowing a voice."}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let b_custom = app.get("/v1/voices?variant=custom", &b).await;
    assert_eq!(b_custom.json["data"], json!([]));
    let b_generations = app.get("/v1/generations", &b).await;
    assert_eq!(b_generations.json["data"], json!([]));
    // A personal workspace is a tenant of its own too.
    let personal = app.token(TokenSpec::personal("user_alice"));
    app.get(&format!("/v1/voices/{voice_id}"), &personal)
        .await
        .assert_problem(404, "not_found");

    // Org A still has everything, and the objects live under its own prefix.
    assert_eq!(
        app.get(&format!("/v1/voices/{voice_id}"), &a).await.status,
        200
    );
    assert_eq!(
        app.get(&format!("/v1/generations/{generation_id}/audio"), &a)
            .await
            .status,
        200
    );
    let files = audio_files(&app);
    assert_eq!(files.len(), 2);
    let prefix = app.data_path().join("audio").join("tenants").join("org_a");
    assert!(files.iter().all(|f| f.starts_with(&prefix)), "{files:?}");

    // Deleting a tenant's objects (as the webhooks do for a deleted workspace).
    let removed = app
        .state
        .speech
        .storage
        .delete_tenant("org_a")
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert!(audio_files(&app).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The OpenAI-compatible provider

#[tokio::test]
async fn http_provider_success_error_and_timeout() {
    let (app, stand_in) = spawn_with_http_provider(Duration::from_secs(5), 1, 2).await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let voice = system_voice(&app, &token, "Aria").await;

    let ok = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "Hello from the stand-in.", "speed": 1.5}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.json);
    assert_eq!(ok.json["provider"], "openai-compatible");
    assert_eq!(ok.json["sample_rate"], 24_000);
    let (auth, sent) = stand_in.last.lock().unwrap().clone().unwrap();
    assert_eq!(auth.as_deref(), Some("Bearer sk-speech-test"));
    assert_eq!(sent["model"], "tts-test");
    assert_eq!(sent["voice"], "nova");
    assert_eq!(sent["input"], "Hello from the stand-in.");
    assert_eq!(sent["response_format"], "wav");
    assert_eq!(sent["speed"], 1.5);
    let audio = app
        .get(
            &format!("/v1/generations/{}/audio", ok.json["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(wav_facts(&audio.bytes).0, 24_000);
    assert_eq!(audio_files(&app).len(), 1);

    // Upstream error: 502, recorded as failed with the reason, no audio object.
    let failed = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "please fail"}),
        )
        .await;
    let problem = failed.assert_problem(502, "upstream_failed");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("model overloaded"),
        "{problem}"
    );
    // Audio that is not audio is a failure too.
    app.post(
        "/v1/generations",
        &token,
        json!({"voice_id": voice["id"], "text": "garbage please"}),
    )
    .await
    .assert_problem(502, "upstream_failed");
    // Timeout.
    let slow = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "slow down"}),
        )
        .await;
    slow.assert_problem(502, "upstream_failed");

    let recorded = app.get("/v1/generations?status=failed", &token).await;
    let failures = recorded.json["data"].as_array().unwrap();
    assert_eq!(failures.len(), 3, "{}", recorded.json);
    assert!(
        failures
            .iter()
            .all(|f| f["audio_url"].is_null() && f["size_bytes"].is_null())
    );
    let reasons: Vec<&str> = failures
        .iter()
        .map(|f| f["failure_reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("time"), "{reasons:?}");
    assert!(reasons[1].contains("unusable audio"), "{reasons:?}");
    assert!(reasons[2].contains("500"), "{reasons:?}");
    let failed_id = failures[0]["id"].as_str().unwrap();
    app.get(&format!("/v1/generations/{failed_id}/audio"), &token)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        audio_files(&app).len(),
        1,
        "no audio for failed generations"
    );
    assert_eq!(app.db.count("generations").await, 4);

    // Pitch is an espeak setting.
    app.post(
        "/v1/generations",
        &token,
        json!({"voice_id": voice["id"], "text": "Hi", "pitch": 5}),
    )
    .await
    .assert_problem(422, "validation_failed");
    // Other formats are passed through and checked.
    app.post(
        "/v1/generations",
        &token,
        json!({"voice_id": voice["id"], "text": "Hi", "format": "mp3"}),
    )
    .await
    .assert_problem(502, "upstream_failed");
}

#[tokio::test]
async fn concurrency_limit_answers_429_per_tenant() {
    let (app, stand_in) = spawn_with_http_provider(Duration::from_millis(1500), 10, 1).await;
    let a = app.token(TokenSpec::org("org_a", "member"));
    let b = app.token(TokenSpec::org("org_b", "member"));
    let voice = system_voice(&app, &a, "Jack").await;
    let body = json!({"voice_id": voice["id"], "text": "slow and steady"});

    let first = {
        let request = app
            .request(reqwest::Method::POST, "/v1/generations", &a)
            .json(&body);
        tokio::spawn(async move { Reply::from(request.send().await.unwrap()).await })
    };
    // Wait until the first synthesis is under way at the provider.
    for _ in 0..100 {
        if stand_in.calls.load(Ordering::SeqCst) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stand_in.calls.load(Ordering::SeqCst), 1);

    let second = app.post("/v1/generations", &a, body.clone()).await;
    second.assert_problem(429, "too_many_requests");
    assert!(second.header("retry-after").is_some());
    // Another workspace is not starved by the first.
    let other = app.post("/v1/generations", &b, body.clone()).await;
    assert_eq!(other.status, 201, "{}", other.json);

    assert_eq!(first.await.unwrap().status, 201);
    // The permit is released: the tenant can synthesize again.
    let again = app.post("/v1/generations", &a, body).await;
    assert_eq!(again.status, 201, "{}", again.json);
    assert_eq!(app.db.count("generations").await, 3);
}

#[tokio::test]
async fn no_provider_answers_503_with_how_to_configure_one() {
    let app = TestApp::spawn_with(|args| args.tts_provider = TtsProvider::None).await;
    let token = app.token(TokenSpec::org("org_a", "admin"));
    let voice = system_voice(&app, &token, "Lena").await;
    let reply = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "Hallo"}),
        )
        .await;
    let problem = reply.assert_problem(503, "service_unavailable");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("RESONANCE_TTS_PROVIDER"),
        "{problem}"
    );
    assert_eq!(app.db.count("generations").await, 0);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL's second wall

/// On PostgreSQL the application role itself cannot read another tenant's voices nor write
/// system voices, whatever SQL it runs (SQLite has no row-level security: nothing to check).
#[tokio::test]
async fn row_level_security_shares_system_voices_read_only() {
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};

    let app = TestApp::spawn().await;
    if !app.db.is_postgres() {
        return;
    }
    let a = app.token(TokenSpec::org("org_a", "admin"));
    create_voice(&app, &a, "Org A only", &wav(16_000, 1.5)).await;
    let system_rows = app.db.count("voices").await - 1;

    let db = Database::connect(&app.db.app_url).await.unwrap();
    let txn = db.begin().await.unwrap();
    let sql = |s: &str| Statement::from_string(DbBackend::Postgres, s.to_owned());
    txn.execute_raw(sql("SELECT set_config('app.tenant_id', 'org_b', true)"))
        .await
        .unwrap();
    let row = txn
        .query_one_raw(sql("SELECT COUNT(*) AS n FROM voices"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), system_rows);
    let updated = txn
        .execute_raw(sql("UPDATE voices SET name = 'Hijacked'"))
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let deleted = txn.execute_raw(sql("DELETE FROM voices")).await.unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    txn.rollback().await.unwrap();

    for tenant in ["NULL", "'org_a'"] {
        let txn = db.begin().await.unwrap();
        txn.execute_raw(sql("SELECT set_config('app.tenant_id', 'org_b', true)"))
            .await
            .unwrap();
        let insert = txn
            .execute_raw(sql(&format!(
                "INSERT INTO voices (id, tenant_id, name, category, language, espeak_voice, version, created_at, updated_at)
                 VALUES (gen_random_uuid(), {tenant}, 'Sneaky', 'general', 'en', 'en', 1, now(), now())"
            )))
            .await;
        assert!(
            insert.is_err(),
            "inserting a voice for tenant {tenant} must fail"
        );
        txn.rollback().await.unwrap();
    }
    db.close().await.ok();
}
