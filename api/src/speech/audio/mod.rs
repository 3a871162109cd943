//! What an audio file really is, decided from its bytes: the container's magic bytes, then a
//! walk over its structure for the duration and sample rate, and signs of truncation.
//!
//! File names and declared content types are never trusted: a client can say anything. The
//! parsers only read container structure (no decoding), so checking a 20 MiB sample is cheap,
//! and every read is bounds-checked: a hostile file yields an error, never a panic. Every walk
//! over the structure moves forward by at least a header's length per step (or, for FLAC's
//! search for its last frame, one byte back), so no input makes one loop forever; the property
//! tests in `fuzz.rs` throw random and mutated files at them to hold them to that.
//!
//! This module sniffs the format and holds the byte-reading helpers the parsers share; each
//! container has its own file.

mod flac;
mod mp3;
mod ogg;
mod wav;
mod webm;

#[cfg(test)]
mod fuzz;

use std::time::Duration;

pub use wav::{fix_streamed_wav_sizes, pcm16_wav};

/// A container this API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    Wav,
    Mp3,
    OggOpus,
    OggVorbis,
    Flac,
    WebM,
}

impl AudioFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::OggOpus | AudioFormat::OggVorbis => "audio/ogg",
            AudioFormat::Flac => "audio/flac",
            AudioFormat::WebM => "audio/webm",
        }
    }

    /// Short name, as in the API's `format` fields.
    pub fn name(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::OggOpus => "opus",
            AudioFormat::OggVorbis => "ogg",
            AudioFormat::Flac => "flac",
            AudioFormat::WebM => "webm",
        }
    }
}

/// What inspection found.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    pub format: AudioFormat,
    pub duration: Duration,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
}

/// Why bytes are not acceptable audio; the message is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AudioError(pub String);

/// The container named by the first bytes, if any we accept.
pub fn sniff(bytes: &[u8]) -> Option<AudioFormat> {
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
        return Some(AudioFormat::Wav);
    }
    if bytes.starts_with(b"fLaC") {
        return Some(AudioFormat::Flac);
    }
    if bytes.starts_with(b"OggS") {
        let body = bytes.get(27 + *bytes.get(26)? as usize..)?;
        if body.starts_with(b"OpusHead") {
            return Some(AudioFormat::OggOpus);
        }
        if body.starts_with(b"\x01vorbis") {
            return Some(AudioFormat::OggVorbis);
        }
        return None;
    }
    if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return Some(AudioFormat::WebM);
    }
    if bytes.starts_with(b"ID3") || mp3::frame(bytes).is_some() {
        return Some(AudioFormat::Mp3);
    }
    None
}

/// Identifies and checks audio: its format by content, its duration, and that it is whole.
pub fn inspect(bytes: &[u8]) -> Result<AudioInfo, AudioError> {
    let Some(format) = sniff(bytes) else {
        return err(
            "not a supported audio file (by its content): expected WAV, MP3, OGG (Opus or Vorbis), FLAC or WebM",
        );
    };
    match format {
        AudioFormat::Wav => wav::parse(bytes),
        AudioFormat::Flac => flac::parse(bytes),
        AudioFormat::Mp3 => mp3::parse(bytes),
        AudioFormat::OggOpus | AudioFormat::OggVorbis => ogg::parse(bytes, format),
        AudioFormat::WebM => webm::parse(bytes),
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, AudioError> {
    Err(AudioError(message.into()))
}

fn truncated<T>(what: &str) -> Result<T, AudioError> {
    err(format!("the file is truncated: {what}"))
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// `seconds` as a duration, or an error where crafted counts state more than a `Duration`
/// holds (about 585 billion years), which `Duration::from_secs_f64` would panic on.
fn duration(seconds: f64) -> Result<Duration, AudioError> {
    Duration::try_from_secs_f64(seconds).or_else(|_| err("the file states an impossible duration"))
}

/// The duration of `samples` at `rate` per second (`rate` > 0).
fn secs(samples: u64, rate: u32) -> Result<Duration, AudioError> {
    duration(samples as f64 / rate as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_bytes_are_refused() {
        assert!(inspect(b"hello, this is plainly text and not audio").is_err());
        assert!(inspect(&[0u8; 4096]).is_err());
    }

    #[test]
    fn impossible_durations_are_errors() {
        assert!(duration(f64::INFINITY).is_err());
        assert!(duration(f64::NAN).is_err());
        assert!(duration(1e300).is_err());
        assert!(secs(u64::MAX - 1, 1).is_err());
        assert_eq!(secs(48_000, 16_000).unwrap(), Duration::from_secs(3));
    }
}
