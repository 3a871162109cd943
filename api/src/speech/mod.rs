//! Text-to-speech: providers behind one trait, audio inspection, storage and the limits that
//! keep synthesis from overrunning the machine.
//!
//! Providers: [`espeak::Espeak`] (local espeak-ng, offline) and
//! [`openai::OpenAiCompatible`] (HTTP). Which one runs is configuration
//! (`RESONANCE_TTS_PROVIDER`); with none, generation endpoints answer 503 saying how to set
//! one up. Every synthesis has a timeout, and what a provider returns is inspected like an
//! uploaded sample, so a broken answer is a failed generation, not a stored broken file.

pub mod audio;
pub mod espeak;
pub mod limiter;
pub mod openai;
pub mod storage;
pub mod workspace_slots;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    config::{SpeechConfig, TtsProvider},
    telemetry::metrics,
};

pub use audio::{AudioFormat, AudioInfo};
pub use limiter::SynthesisLimiter;
pub use storage::AudioStorage;

/// An audio format a generation can be produced in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Wav,
    Mp3,
    Opus,
    Flac,
}

impl OutputFormat {
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Wav => "wav",
            OutputFormat::Mp3 => "mp3",
            OutputFormat::Opus => "opus",
            OutputFormat::Flac => "flac",
        }
    }

    /// The container a provider must return for this format.
    pub fn container(self) -> AudioFormat {
        match self {
            OutputFormat::Wav => AudioFormat::Wav,
            OutputFormat::Mp3 => AudioFormat::Mp3,
            OutputFormat::Opus => AudioFormat::OggOpus,
            OutputFormat::Flac => AudioFormat::Flac,
        }
    }

    pub fn parse(name: &str) -> Option<OutputFormat> {
        [
            OutputFormat::Wav,
            OutputFormat::Mp3,
            OutputFormat::Opus,
            OutputFormat::Flac,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }
}

/// What to say, with which voice and settings.
#[derive(Debug, Clone)]
pub struct SynthesisRequest {
    pub text: String,
    /// espeak-ng voice (`en-us+f3`).
    pub espeak_voice: String,
    /// Voice name for HTTP providers; their configured default when None.
    pub remote_voice: Option<String>,
    /// 1.0 is normal speed.
    pub speed: f64,
    /// Offset from the voice's normal pitch, -50..=50.
    pub pitch: i32,
    pub format: OutputFormat,
}

/// A text-to-speech engine. Errors are short, client-safe reasons (they are stored on the
/// failed generation and shown in the 502).
pub trait SpeechProvider: Send + Sync {
    /// Recorded on each generation (`espeak`, `openai-compatible`).
    fn name(&self) -> &'static str;
    fn supports(&self, format: OutputFormat) -> bool;
    fn supports_pitch(&self) -> bool;
    fn synthesize(&self, request: SynthesisRequest) -> BoxFuture<'static, Result<Bytes, String>>;
}

/// Synthesized, checked audio.
#[derive(Debug, Clone)]
pub struct Synthesized {
    pub bytes: Bytes,
    pub info: AudioInfo,
}

/// Everything speech endpoints share: the provider (if any), storage, limits.
pub struct Speech {
    pub provider: Option<Arc<dyn SpeechProvider>>,
    pub storage: AudioStorage,
    pub limiter: SynthesisLimiter,
    pub timeout: Duration,
    pub sample_max_bytes: usize,
    pub sample_min: Duration,
    pub sample_max: Duration,
}

impl Speech {
    /// Builds the configured provider and storage. `auto` picks espeak-ng when it is on PATH.
    pub fn from_config(config: &SpeechConfig) -> anyhow::Result<Speech> {
        let provider: Option<Arc<dyn SpeechProvider>> = match config.provider {
            TtsProvider::None => None,
            TtsProvider::Auto => espeak::Espeak::locate(&config.espeak_path)
                .map(|p| Arc::new(p) as Arc<dyn SpeechProvider>),
            TtsProvider::Espeak => Some(Arc::new(
                espeak::Espeak::locate(&config.espeak_path).ok_or_else(|| {
                    anyhow::anyhow!(
                        "RESONANCE_TTS_PROVIDER is espeak but {} is not installed (apt-get install espeak-ng) or not on PATH",
                        config.espeak_path
                    )
                })?,
            )),
            TtsProvider::OpenAiCompatible => Some(Arc::new(openai::OpenAiCompatible::new(
                config.base_url.as_deref().unwrap_or_default(),
                config.api_key.clone(),
                config.model.clone(),
                config.default_voice.clone(),
                config.timeout,
            )?)),
        };
        match &provider {
            Some(p) => tracing::info!(provider = p.name(), "speech synthesis enabled"),
            None => tracing::warn!(
                "no speech provider: install espeak-ng or set RESONANCE_TTS_PROVIDER=openai-compatible with RESONANCE_TTS_BASE_URL"
            ),
        }
        Ok(Speech {
            provider,
            storage: AudioStorage::new(&config.storage)?,
            limiter: SynthesisLimiter::new(
                config.max_concurrency,
                config.max_per_tenant,
                Duration::from_secs(2),
            ),
            timeout: config.timeout,
            sample_max_bytes: config.sample_max_bytes,
            sample_min: config.sample_min,
            sample_max: config.sample_max,
        })
    }

    /// Runs `request` on `provider` within the timeout and checks what comes back. Counted
    /// in `speech_syntheses_total` and `speech_synthesis_duration_seconds`.
    pub async fn synthesize(
        &self,
        provider: &dyn SpeechProvider,
        request: SynthesisRequest,
    ) -> Result<Synthesized, String> {
        let started = Instant::now();
        let result = self.synthesize_checked(provider, request).await;
        let outcome = match &result {
            Ok(_) => "success",
            Err((outcome, _)) => *outcome,
        };
        metrics::record_synthesis(provider.name(), outcome, started.elapsed());
        result.map_err(|(_, reason)| reason)
    }

    /// [`Speech::synthesize`], with the `outcome` label of a failure.
    async fn synthesize_checked(
        &self,
        provider: &dyn SpeechProvider,
        request: SynthesisRequest,
    ) -> Result<Synthesized, (&'static str, String)> {
        let wanted = request.format;
        let bytes = match tokio::time::timeout(self.timeout, provider.synthesize(request)).await {
            Ok(result) => result.map_err(|reason| ("provider_error", reason))?,
            Err(_) => {
                let reason = format!("synthesis timed out after {} s", self.timeout.as_secs());
                return Err(("timeout", reason));
            }
        };
        let unusable = |reason: String| ("unusable_audio", reason);
        let info = audio::inspect(&bytes)
            .map_err(|e| unusable(format!("the provider returned unusable audio: {e}")))?;
        if info.format != wanted.container() {
            return Err(unusable(format!(
                "the provider returned {} audio instead of {}",
                info.format.name(),
                wanted.name()
            )));
        }
        Ok(Synthesized { bytes, info })
    }
}
