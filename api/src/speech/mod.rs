//! Text-to-speech: providers behind one trait, audio inspection, storage and the limits that
//! keep synthesis from overrunning the machine.
//!
//! Providers: [`espeak::Espeak`] (local espeak-ng, offline) and
//! [`openai::OpenAiCompatible`] (HTTP). Which one runs is configuration
//! (`RESONANCE_TTS_PROVIDER`); with none, generation endpoints answer 503 saying how to set
//! one up. Providers answer 16-bit PCM WAV, read as it arrives; [`encode`] turns it into the
//! requested format (mp3, opus, flac, wav, pcm) on a blocking thread, chunk by chunk, so a
//! streamed answer starts with the first words. Every synthesis has a timeout, and the
//! encoded whole is inspected like an uploaded sample before it is stored, so a broken
//! answer is a failed generation, not a stored broken file.

pub mod audio;
pub mod encode;
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
use futures_util::stream::BoxStream;
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
    Mp3,
    Opus,
    Flac,
    Wav,
    Pcm,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 5] = [
        OutputFormat::Mp3,
        OutputFormat::Opus,
        OutputFormat::Flac,
        OutputFormat::Wav,
        OutputFormat::Pcm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Mp3 => "mp3",
            OutputFormat::Opus => "opus",
            OutputFormat::Flac => "flac",
            OutputFormat::Wav => "wav",
            OutputFormat::Pcm => "pcm",
        }
    }

    /// The container inspection must find in what was produced; raw PCM has none.
    pub fn container(self) -> Option<AudioFormat> {
        match self {
            OutputFormat::Mp3 => Some(AudioFormat::Mp3),
            OutputFormat::Opus => Some(AudioFormat::OggOpus),
            OutputFormat::Flac => Some(AudioFormat::Flac),
            OutputFormat::Wav => Some(AudioFormat::Wav),
            OutputFormat::Pcm => None,
        }
    }

    /// The media type the audio is served with.
    pub fn content_type(self) -> &'static str {
        match self.container() {
            Some(AudioFormat::OggOpus) => "audio/ogg; codecs=opus",
            Some(container) => container.content_type(),
            None => PCM_CONTENT_TYPE,
        }
    }

    /// Whether `bitrate` applies (the lossy formats).
    pub fn has_bitrate(self) -> bool {
        matches!(self, OutputFormat::Mp3 | OutputFormat::Opus)
    }

    pub fn parse(name: &str) -> Option<OutputFormat> {
        OutputFormat::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Raw 16-bit little-endian mono samples; the rate is in the record and `x-sample-rate`.
pub const PCM_CONTENT_TYPE: &str = "audio/pcm";

/// What to say, with which voice and settings. Providers always answer 16-bit PCM WAV; the
/// requested format is made from it here ([`encode`]).
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
}

/// A text-to-speech engine. Errors are short, client-safe reasons (they are stored on the
/// failed generation and shown in the 502).
pub trait SpeechProvider: Send + Sync {
    /// Recorded on each generation (`espeak`, `openai-compatible`).
    fn name(&self) -> &'static str;
    fn supports_pitch(&self) -> bool;
    /// 16-bit PCM WAV, yielded as it is produced (a streamed WAV's sizes may be placeholders).
    fn synthesize(&self, request: SynthesisRequest) -> BoxStream<'static, Result<Bytes, String>>;
}

/// Synthesized, encoded, checked audio.
#[derive(Debug, Clone)]
pub struct Synthesized {
    pub bytes: Bytes,
    pub format: OutputFormat,
    pub duration: Duration,
    pub sample_rate: u32,
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

    /// Starts `request` on `provider`, encoded with `settings`; read it with
    /// [`Synthesis::next`] (streaming) or [`Synthesis::finish`].
    pub fn start(
        &self,
        provider: &dyn SpeechProvider,
        request: SynthesisRequest,
        settings: encode::Settings,
    ) -> Synthesis {
        Synthesis {
            output: encode::transcode(settings, provider.synthesize(request)),
            deadline: tokio::time::Instant::now() + self.timeout,
            timeout: self.timeout,
            provider: provider.name(),
            format: settings.format,
            started: Instant::now(),
            audio: Vec::new(),
            size: 0,
            sample_rate: None,
            finished: None,
        }
    }
}

/// A synthesis under way: encoded chunks as they come, then the checked whole. Counted in
/// `speech_syntheses_total` and `speech_synthesis_duration_seconds` when it ends.
pub struct Synthesis {
    output: tokio::sync::mpsc::Receiver<Result<encode::Output, String>>,
    deadline: tokio::time::Instant,
    timeout: Duration,
    provider: &'static str,
    format: OutputFormat,
    started: Instant,
    /// Every chunk so far (cheap clones of what was handed out).
    audio: Vec<Bytes>,
    size: usize,
    sample_rate: Option<u32>,
    finished: Option<encode::Finished>,
}

/// Largest encoded generation kept (a 5 000-character text is about 5 minutes of audio:
/// 13 MB as 22 kHz WAV).
const MAX_AUDIO_BYTES: usize = 64 * 1024 * 1024;

impl Synthesis {
    /// The next encoded chunk; None once all audio has been produced.
    pub async fn next(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            if self.finished.is_some() {
                return Ok(None);
            }
            if let Some(chunk) = self.receive().await? {
                return Ok(Some(chunk));
            }
        }
    }

    /// The output's samples per second, once the first audio is out.
    pub fn sample_rate(&self) -> Option<u32> {
        self.sample_rate
    }

    /// One message from the encoder: a chunk, or None for a message that is not audio.
    async fn receive(&mut self) -> Result<Option<Bytes>, String> {
        let received = match tokio::time::timeout_at(self.deadline, self.output.recv()).await {
            Ok(received) => received,
            Err(_) => {
                let reason = format!("synthesis timed out after {} s", self.timeout.as_secs());
                return Err(self.fail("timeout", reason));
            }
        };
        match received {
            Some(Ok(encode::Output::Audio(chunk))) => {
                self.size += chunk.len();
                if self.size > MAX_AUDIO_BYTES {
                    return Err(self.fail(
                        "provider_error",
                        "the speech provider returned too much audio".into(),
                    ));
                }
                self.audio.push(chunk.clone());
                Ok(Some(chunk))
            }
            Some(Ok(encode::Output::Started { sample_rate })) => {
                self.sample_rate = Some(sample_rate);
                Ok(None)
            }
            Some(Ok(encode::Output::Finished(finished))) => {
                self.finished = Some(finished);
                Ok(None)
            }
            Some(Err(reason)) => Err(self.fail("provider_error", reason)),
            None => Err(self.fail("provider_error", "the encoder stopped unexpectedly".into())),
        }
    }

    /// Waits for the rest and checks the whole: sealed, inspected (a container must parse
    /// as what was asked for), measured.
    pub async fn finish(mut self) -> Result<Synthesized, String> {
        while self.next().await?.is_some() {}
        let Some(finished) = self.finished.take() else {
            return Err(self.fail(
                "provider_error",
                "the encoder ended without its summary".into(),
            ));
        };
        let mut whole = Vec::with_capacity(self.size);
        for chunk in &self.audio {
            whole.extend_from_slice(chunk);
        }
        finished.seal(&mut whole);
        if let Some(container) = self.format.container() {
            let found = audio::inspect(&whole).map(|info| info.format);
            if found != Ok(container) {
                let reason = match found {
                    Ok(other) => format!(
                        "the encoder produced {} instead of {}",
                        other.name(),
                        self.format.name()
                    ),
                    Err(e) => format!("the encoder produced unusable audio: {e}"),
                };
                return Err(self.fail("unusable_audio", reason));
            }
        }
        metrics::record_synthesis(self.provider, "success", self.started.elapsed());
        Ok(Synthesized {
            bytes: Bytes::from(whole),
            format: self.format,
            duration: finished.duration,
            sample_rate: finished.sample_rate,
        })
    }

    /// Counts a failure with its `outcome` label and hands the reason back.
    fn fail(&self, outcome: &'static str, reason: String) -> String {
        metrics::record_synthesis(self.provider, outcome, self.started.elapsed());
        reason
    }
}
