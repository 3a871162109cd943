//! Voices: the shared system library, and custom voices with checked samples that stream with
//! Range requests.

use resonance_tests::{
    Reply, TestApp, TokenSpec,
    fixtures::{audio_files, create_voice, form, get_with_range, post_form, wav},
};
use serde_json::json;

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
    let put = Reply::send(app.request(reqwest::Method::PUT, "/v1/voices", &a)).await;
    put.assert_problem(405, "method_not_allowed");
}

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
    let stale = Reply::send(
        app.request(reqwest::Method::PATCH, &format!("/v1/voices/{id}"), &admin)
            .header("if-match", etag)
            .json(&json!({"name": "Again"})),
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
