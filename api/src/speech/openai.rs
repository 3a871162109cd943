//! The `openai-compatible` provider: `POST {base}/v1/audio/speech`, the API shape served by
//! OpenAI and by many self-hosted TTS servers. The audio is read as it arrives.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream::BoxStream};
use serde_json::json;

use super::{SpeechProvider, SynthesisRequest};

pub struct OpenAiCompatible {
    client: reqwest::Client,
    endpoint: String,
    api_key: Option<String>,
    model: String,
    default_voice: String,
}

impl OpenAiCompatible {
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        model: String,
        default_voice: String,
        timeout: Duration,
    ) -> anyhow::Result<OpenAiCompatible> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()?;
        Ok(OpenAiCompatible {
            client,
            endpoint: format!("{}/v1/audio/speech", base_url.trim_end_matches('/')),
            api_key,
            model,
            default_voice,
        })
    }
}

impl SpeechProvider for OpenAiCompatible {
    fn name(&self) -> &'static str {
        "openai-compatible"
    }

    fn supports_pitch(&self) -> bool {
        false
    }

    fn synthesize(&self, request: SynthesisRequest) -> BoxStream<'static, Result<Bytes, String>> {
        let client = self.client.clone();
        let endpoint = self.endpoint.clone();
        let api_key = self.api_key.clone();
        // Always WAV: every output format is encoded here from the samples, so `bitrate`
        // and `sample_rate` mean the same with every provider.
        let body = json!({
            "model": self.model,
            "input": request.text,
            "voice": request.remote_voice.unwrap_or_else(|| self.default_voice.clone()),
            "response_format": "wav",
            "speed": request.speed,
        });
        let answered = async move {
            let mut call = client.post(&endpoint).json(&body);
            if let Some(key) = api_key {
                call = call.bearer_auth(key);
            }
            let response = call.send().await.map_err(|e| {
                if e.is_timeout() {
                    "the speech provider did not answer in time".to_string()
                } else {
                    format!("the speech provider could not be reached: {e}")
                }
            })?;
            let status = response.status();
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                let message: String = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or(text)
                    .chars()
                    .take(300)
                    .collect();
                return Err(format!("the speech provider answered {status}: {message}"));
            }
            Ok(response)
        };
        futures_util::stream::once(answered)
            .flat_map(|answered| match answered {
                Ok(response) => response
                    .bytes_stream()
                    .map(|chunk| {
                        chunk.map_err(|e| {
                            if e.is_timeout() {
                                "the speech provider did not answer in time".to_string()
                            } else {
                                format!("reading the provider's audio failed: {e}")
                            }
                        })
                    })
                    .boxed(),
                Err(reason) => futures_util::stream::once(async move { Err(reason) }).boxed(),
            })
            .boxed()
    }
}
