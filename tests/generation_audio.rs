//! Generated audio as clients receive it: every output format decoded with real decoders and
//! measured against the WAV of the same text, `sample_rate` and `bitrate`, and streamed
//! synthesis (`"stream": true`): headers, bytes equal to what is stored, a client that leaves
//! early, and idempotent retries. All with real espeak-ng.

use std::time::Duration;

use resonance_tests::{
    TestApp, TokenSpec,
    fixtures::{audio_files, decode, get_with_range, require_espeak, system_voice},
};
use serde_json::{Value, json};

/// About 20 seconds of speech: long enough that a format's framing (an MP3 encoder's delay
/// and padding) is well under 1 % of it.
const TEXT: &str = "The quick brown fox jumps over the lazy dog, and then it runs along the \
    river bank until the sun goes down behind the hills. Every evening the same fox comes \
    back to the same place, looks at the water for a while, and listens to the birds singing \
    in the tall trees on the other side. Nobody knows where it sleeps at night.";

async fn generate(app: &TestApp, token: &str, body: Value) -> (Value, Vec<u8>) {
    let created = app.post("/v1/generations", token, body).await;
    assert_eq!(created.status, 201, "{}", created.json);
    let audio = app
        .get(created.json["audio_url"].as_str().unwrap(), token)
        .await;
    assert_eq!(audio.status, 200);
    assert_eq!(
        audio.header("content-type"),
        created.json["content_type"].as_str()
    );
    (created.json, audio.bytes)
}

#[tokio::test]
async fn every_format_decodes_to_the_length_of_the_wav() {
    require_espeak();
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let voice = system_voice(&app, &token, "Aria").await;

    let (wav, wav_bytes) = generate(
        &app,
        &token,
        json!({"voice_id": voice["id"], "text": TEXT, "format": "wav"}),
    )
    .await;
    let reference = decode("wav", &wav_bytes, 0);
    assert!(reference.seconds > 10.0, "{reference:?}");
    assert_eq!(wav["sample_rate"], reference.sample_rate);

    for (format, content_type) in [
        ("mp3", "audio/mpeg"),
        ("opus", "audio/ogg; codecs=opus"),
        ("flac", "audio/flac"),
        ("pcm", "audio/pcm"),
    ] {
        let (record, bytes) = generate(
            &app,
            &token,
            json!({"voice_id": voice["id"], "text": TEXT, "format": format}),
        )
        .await;
        assert_eq!(record["format"], format);
        assert_eq!(record["content_type"], content_type);
        assert_eq!(record["size_bytes"], bytes.len(), "{format}");
        let rate = record["sample_rate"].as_u64().unwrap() as u32;
        let decoded = decode(format, &bytes, rate);
        let off = (decoded.seconds - reference.seconds).abs() / reference.seconds;
        assert!(
            off < 0.01,
            "{format}: {decoded:?} vs the WAV's {reference:?}"
        );
        let recorded = record["duration_ms"].as_f64().unwrap() / 1000.0;
        assert!(
            (recorded - reference.seconds).abs() / reference.seconds < 0.01,
            "{format}: recorded {recorded} s"
        );
        match format {
            // Opus always plays at 48 kHz; the record says the rate it was encoded at.
            "opus" => assert_eq!(rate, 24_000),
            _ => assert_eq!(rate, reference.sample_rate, "{format}"),
        }
        // Lossy formats are a fraction of the WAV; lossless FLAC is smaller, PCM the same.
        let most = match format {
            "mp3" | "opus" => wav_bytes.len() / 5,
            "flac" => wav_bytes.len() * 9 / 10,
            _ => wav_bytes.len(),
        };
        {
            assert!(
                bytes.len() <= most,
                "{format}: {} bytes vs the WAV's {}",
                bytes.len(),
                wav_bytes.len()
            );
        }
        // The stored bytes come back exactly, range by range.
        let path = record["audio_url"].as_str().unwrap();
        let middle = get_with_range(&app, path, &token, "bytes=1000-4999").await;
        assert_eq!(middle.status, 206);
        assert_eq!(middle.bytes, &bytes[1000..5000], "{format}");
        let tail = get_with_range(&app, path, &token, "bytes=-777").await;
        assert_eq!(tail.bytes, &bytes[bytes.len() - 777..], "{format}");
    }
    // mp3 is the default.
    let (default, _) = generate(
        &app,
        &token,
        json!({"voice_id": voice["id"], "text": "Hello."}),
    )
    .await;
    assert_eq!(default["format"], "mp3");
}

#[tokio::test]
async fn sample_rate_and_bitrate_are_honoured() {
    require_espeak();
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let voice = system_voice(&app, &token, "Aria").await;
    let body = |extra: Value| {
        let mut body = json!({"voice_id": voice["id"], "text": TEXT});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };

    let (mp3_64, mp3_64_bytes) = generate(&app, &token, body(json!({"format": "mp3"}))).await;
    let (mp3_32, mp3_32_bytes) = generate(
        &app,
        &token,
        body(json!({"format": "mp3", "bitrate": 32, "sample_rate": 16000})),
    )
    .await;
    assert_eq!(mp3_32["sample_rate"], 16_000);
    let decoded = decode("mp3", &mp3_32_bytes, 0);
    assert_eq!(decoded.sample_rate, 16_000);
    // Constant bitrate: size follows the bitrate.
    let ratio = mp3_32_bytes.len() as f64 / mp3_64_bytes.len() as f64;
    assert!((0.45..0.55).contains(&ratio), "32 vs 64 kbit/s: {ratio}");
    let secs = mp3_64["duration_ms"].as_f64().unwrap() / 1000.0;
    let kbps = mp3_64_bytes.len() as f64 * 8.0 / secs / 1000.0;
    assert!((60.0..68.0).contains(&kbps), "{kbps} kbit/s");

    let (pcm, pcm_bytes) = generate(
        &app,
        &token,
        body(json!({"format": "pcm", "sample_rate": 8000})),
    )
    .await;
    assert_eq!(pcm["sample_rate"], 8_000);
    let seconds = pcm_bytes.len() as f64 / 2.0 / 8000.0;
    assert!((seconds - secs).abs() / secs < 0.01, "{seconds} vs {secs}");

    // 22 050 Hz is not an Opus rate: the next one up is used, and said.
    let (opus, _) = generate(
        &app,
        &token,
        body(json!({"format": "opus", "sample_rate": 22050, "bitrate": 64})),
    )
    .await;
    assert_eq!(opus["sample_rate"], 24_000);
    let (flac, flac_bytes) = generate(
        &app,
        &token,
        body(json!({"format": "flac", "sample_rate": 44100})),
    )
    .await;
    assert_eq!(flac["sample_rate"], 44_100);
    assert_eq!(decode("flac", &flac_bytes, 0).sample_rate, 44_100);
}

/// Sends a streamed generation request and returns the answer, unread.
async fn start_stream(
    app: &TestApp,
    token: &str,
    body: Value,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .request(reqwest::Method::POST, "/v1/generations", token)
        .json(&body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_streamed_generation_sends_audio_as_it_is_made_and_stores_the_same() {
    require_espeak();
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let voice = system_voice(&app, &token, "Aria").await;
    let body = json!({"voice_id": voice["id"], "text": TEXT, "stream": true});

    let response = start_stream(&app, &token, body.clone(), Some("\"stream-1\"")).await;
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "audio/mpeg");
    assert_eq!(
        header("x-character-count"),
        TEXT.chars().count().to_string()
    );
    assert_eq!(header("x-sample-rate"), "22050");
    assert!(
        response.headers().get("content-length").is_none(),
        "chunked"
    );
    let id = header("x-generation-id");

    // (While it runs a retry with the same key answers 409; espeak-ng finishes too fast to
    // catch that here, and the key's in-progress answer is tested in tests/idempotency.rs.)

    let streamed = response.bytes().await.unwrap();
    // The stream ends once the generation is stored: the record is there, with these bytes.
    let record = app.get(&format!("/v1/generations/{id}"), &token).await;
    assert_eq!(record.status, 200, "{}", record.json);
    assert_eq!(record.json["status"], "succeeded");
    assert_eq!(record.json["size_bytes"], streamed.len());
    let stored = app
        .get(&format!("/v1/generations/{id}/audio"), &token)
        .await;
    assert_eq!(stored.bytes, streamed.to_vec());
    let decoded = decode("mp3", &streamed, 0);
    let recorded = record.json["duration_ms"].as_f64().unwrap() / 1000.0;
    assert!((decoded.seconds - recorded).abs() / recorded < 0.01);

    // Afterwards the retry is sent to the generation, which is not made or charged again.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let replay = no_redirects
        .post(app.url("/v1/generations"))
        .bearer_auth(&token)
        .header("idempotency-key", "\"stream-1\"")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303);
    assert_eq!(
        replay.headers()["location"].to_str().unwrap(),
        format!("/v1/generations/{id}")
    );
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(app.db.count("generations").await, 1);

    // WAV and FLAC cannot know their length while streaming; the stored copy says it.
    for format in ["wav", "flac"] {
        let mut body = body.clone();
        body["format"] = json!(format);
        let response = start_stream(&app, &token, body, None).await;
        let id = response.headers()["x-generation-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let streamed = response.bytes().await.unwrap();
        let stored = app
            .get(&format!("/v1/generations/{id}/audio"), &token)
            .await;
        assert_eq!(stored.bytes.len(), streamed.len(), "{format}");
        let decoded = decode(format, &stored.bytes, 0);
        assert!(
            (decoded.seconds - recorded).abs() / recorded < 0.01,
            "{format}: {decoded:?}"
        );
    }
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_does_not_stop_the_generation() {
    require_espeak();
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let voice = system_voice(&app, &token, "Aria").await;
    let long_text = TEXT.repeat(12);
    let text: String = long_text.chars().take(4_990).collect();
    let mut response = start_stream(
        &app,
        &token,
        json!({"voice_id": voice["id"], "text": text, "stream": true, "format": "opus"}),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let first = response.chunk().await.unwrap().expect("a first chunk");
    assert_eq!(&first[..4], b"OggS");
    drop(response);

    let mut record = app.get(&format!("/v1/generations/{id}"), &token).await;
    for _ in 0..300 {
        if record.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        record = app.get(&format!("/v1/generations/{id}"), &token).await;
    }
    assert_eq!(record.status, 200, "{}", record.json);
    assert_eq!(record.json["status"], "succeeded");
    let stored = app
        .get(&format!("/v1/generations/{id}/audio"), &token)
        .await;
    let decoded = decode("opus", &stored.bytes, 0);
    assert!(
        decoded.seconds > 60.0,
        "the whole text was spoken: {decoded:?}"
    );
    assert_eq!(audio_files(&app).len(), 1);
}
