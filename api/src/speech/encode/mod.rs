//! Encoding: the provider's 16-bit PCM (always WAV, read as it arrives) becomes the
//! requested format at the requested rate, on a blocking thread so the async workers never
//! encode.
//!
//! One pipeline serves both answers: [`transcode`] yields encoded chunks as soon as the
//! encoder has them (the streamed answer sends each one on) and ends with a [`Finished`]
//! that knows the duration and can [`seal`](Finished::seal) the complete object (sizes and
//! totals a stream could not know up front) before it is stored.
//!
//! Libraries: LAME for mp3 and libopus for Opus (both C, built from source by their crates,
//! the same encoders ffmpeg would call, without a subprocess per request), `ogg` for Opus's
//! container, `flacenc` (pure Rust) for FLAC, rubato for sample-rate conversion.

mod flac;
mod mp3;
mod opus;
mod pcm;
mod resample;
mod wav_reader;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream::BoxStream};
use tokio::sync::mpsc;

use super::OutputFormat;
use resample::Resampler;
pub use wav_reader::WavReader;

/// Sample rates a client may ask for (`sample_rate`).
pub const SAMPLE_RATES: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];
/// Rates Opus encodes at.
pub const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// Rates MP3 (MPEG 1, 2 and 2.5) encodes at.
const MP3_RATES: [u32; 9] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
];
/// Bitrates a client may ask for (`bitrate`, kbit/s; mp3 and opus only).
pub const BITRATES: [u32; 6] = [32, 48, 64, 96, 128, 160];
/// Bitrates used when none is asked for: enough for clear speech.
pub const DEFAULT_MP3_KBPS: u32 = 64;
pub const DEFAULT_OPUS_KBPS: u32 = 32;

/// What to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub format: OutputFormat,
    /// None: the provider's rate (for Opus, the nearest rate it takes at or above it).
    pub sample_rate: Option<u32>,
    /// None: the format's default. Ignored by lossless formats.
    pub bitrate_kbps: Option<u32>,
}

impl Settings {
    /// The rate the output will have, given the provider's.
    pub fn output_rate(&self, source: u32) -> u32 {
        if let Some(rate) = self.sample_rate {
            return rate;
        }
        let nearest_at_or_above = |rates: &[u32]| {
            rates
                .iter()
                .copied()
                .find(|r| *r >= source)
                .unwrap_or(48_000)
        };
        match self.format {
            OutputFormat::Opus => nearest_at_or_above(&OPUS_RATES),
            OutputFormat::Mp3 if !MP3_RATES.contains(&source) => nearest_at_or_above(&MP3_RATES),
            _ => source,
        }
    }

    fn encoder(&self, rate: u32) -> Result<Box<dyn Encode>, String> {
        Ok(match self.format {
            OutputFormat::Mp3 => Box::new(mp3::Mp3::new(
                rate,
                self.bitrate_kbps.unwrap_or(DEFAULT_MP3_KBPS),
            )?),
            OutputFormat::Opus => Box::new(opus::Opus::new(
                rate,
                self.bitrate_kbps.unwrap_or(DEFAULT_OPUS_KBPS),
            )?),
            OutputFormat::Flac => Box::new(flac::Flac::new(rate)?),
            OutputFormat::Wav => Box::new(pcm::Pcm::wav(rate)),
            OutputFormat::Pcm => Box::new(pcm::Pcm::raw()),
        })
    }
}

/// One output format's encoder, fed mono 16-bit samples at the output rate.
trait Encode: Send {
    /// Encodes `samples`, appending whatever is ready to `out`.
    fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) -> Result<(), String>;
    /// Encodes what is buffered and ends the stream.
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String>;
    /// Fills in, in the complete object, what could only be known at the end.
    fn seal(&self, _whole: &mut [u8]) {}
}

/// What [`transcode`] yields.
pub enum Output {
    /// First, once the provider's format is known: the output's sample rate.
    Started {
        sample_rate: u32,
    },
    Audio(Bytes),
    Finished(Finished),
}

/// The end of an encoding: what was produced.
pub struct Finished {
    pub duration: Duration,
    pub sample_rate: u32,
    encoder: Box<dyn Encode>,
}

impl Finished {
    /// Completes the header of the whole object (e.g. WAV sizes, FLAC's total).
    pub fn seal(&self, whole: &mut [u8]) {
        self.encoder.seal(whole);
    }
}

/// Chunks in flight between the stages; the provider waits when the encoder is behind.
const QUEUE: usize = 16;

/// Encodes the provider's WAV `source` with `settings` as it arrives. Dropping the receiver
/// stops the encoder and, through the source, the provider.
pub fn transcode(
    settings: Settings,
    mut source: BoxStream<'static, Result<Bytes, String>>,
) -> mpsc::Receiver<Result<Output, String>> {
    let (input, mut input_rx) = mpsc::channel::<Result<Bytes, String>>(QUEUE);
    let (output, output_rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        while let Some(chunk) = source.next().await {
            let failed = chunk.is_err();
            if input.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    tokio::task::spawn_blocking(move || {
        if let Err(reason) = encode_all(settings, &mut input_rx, &output) {
            let _ = output.blocking_send(Err(reason));
        }
    });
    output_rx
}

/// The blocking side of [`transcode`].
fn encode_all(
    settings: Settings,
    input: &mut mpsc::Receiver<Result<Bytes, String>>,
    output: &mpsc::Sender<Result<Output, String>>,
) -> Result<(), String> {
    let gone = || "the listener went away".to_string();
    let mut reader = WavReader::default();
    let mut stage: Option<(Option<Resampler>, Box<dyn Encode>, u32)> = None;
    let (mut pcm, mut resampled, mut out) = (Vec::new(), Vec::new(), Vec::new());
    let mut source_samples = 0u64;
    while let Some(chunk) = input.blocking_recv() {
        pcm.clear();
        reader
            .push(&chunk?, &mut pcm)
            .map_err(|e| format!("the provider returned unusable audio: {e}"))?;
        if stage.is_none()
            && let Some(spec) = reader.spec()
        {
            let rate = settings.output_rate(spec.sample_rate);
            let resampler = (rate != spec.sample_rate)
                .then(|| Resampler::new(spec.sample_rate, rate))
                .transpose()?;
            stage = Some((resampler, settings.encoder(rate)?, rate));
            output
                .blocking_send(Ok(Output::Started { sample_rate: rate }))
                .map_err(|_| gone())?;
        }
        let Some((resampler, encoder, _)) = stage.as_mut() else {
            continue;
        };
        source_samples += pcm.len() as u64;
        match resampler {
            Some(resampler) => {
                resampled.clear();
                resampler.push(&pcm, &mut resampled)?;
                encoder.encode(&resampled, &mut out)?;
            }
            None => encoder.encode(&pcm, &mut out)?,
        }
        if !out.is_empty() {
            let audio = Bytes::from(std::mem::take(&mut out));
            output
                .blocking_send(Ok(Output::Audio(audio)))
                .map_err(|_| gone())?;
        }
    }
    let spec = reader
        .finish()
        .map_err(|e| format!("the provider returned unusable audio: {e}"))?;
    let Some((mut resampler, mut encoder, sample_rate)) = stage else {
        return Err("the provider returned no audio".into());
    };
    if source_samples == 0 {
        return Err("the provider returned no audio".into());
    }
    if let Some(resampler) = resampler.as_mut() {
        resampled.clear();
        resampler.finish(&mut resampled)?;
        encoder.encode(&resampled, &mut out)?;
    }
    encoder.finish(&mut out)?;
    if !out.is_empty() {
        output
            .blocking_send(Ok(Output::Audio(Bytes::from(out))))
            .map_err(|_| gone())?;
    }
    let duration = Duration::from_secs_f64(source_samples as f64 / f64::from(spec.sample_rate));
    let finished = Finished {
        duration,
        sample_rate,
        encoder,
    };
    output
        .blocking_send(Ok(Output::Finished(finished)))
        .map_err(|_| gone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::audio::{self, pcm16_wav};

    /// A spoken-like signal: a 220 Hz tone that swells and fades.
    fn voice_like(rate: u32, secs: f64) -> Vec<u8> {
        let n = (f64::from(rate) * secs) as usize;
        let samples: Vec<i16> = (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                let envelope = (t * 3.0).sin().abs();
                ((t * 220.0 * std::f64::consts::TAU).sin() * envelope * 12_000.0) as i16
            })
            .collect();
        pcm16_wav(rate, &samples)
    }

    async fn encode(settings: Settings, wav: Vec<u8>, chunk: usize) -> (Vec<u8>, Finished) {
        let chunks: Vec<Result<Bytes, String>> = wav
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut output = transcode(settings, futures_util::stream::iter(chunks).boxed());
        let mut whole = Vec::new();
        while let Some(item) = output.recv().await {
            match item.unwrap() {
                Output::Started { .. } => {}
                Output::Audio(audio) => whole.extend_from_slice(&audio),
                Output::Finished(finished) => {
                    finished.seal(&mut whole);
                    return (whole, finished);
                }
            }
        }
        panic!("the encoder ended without finishing");
    }

    #[tokio::test]
    async fn every_format_lasts_as_long_as_its_input_whatever_the_chunking() {
        for format in OutputFormat::ALL {
            for (rate, chunk) in [(None, 4096), (Some(16_000), 333), (Some(48_000), 100_000)] {
                let settings = Settings {
                    format,
                    sample_rate: rate,
                    bitrate_kbps: None,
                };
                let (bytes, finished) = encode(settings, voice_like(22_050, 3.0), chunk).await;
                let expected_rate = settings.output_rate(22_050);
                assert_eq!(finished.sample_rate, expected_rate, "{format:?} {rate:?}");
                assert!((finished.duration.as_secs_f64() - 3.0).abs() < 0.001);
                let seconds = match format.container() {
                    Some(container) => {
                        let info = audio::inspect(&bytes)
                            .unwrap_or_else(|e| panic!("{format:?} {rate:?}: {e}"));
                        assert_eq!(info.format, container);
                        info.duration.as_secs_f64()
                    }
                    None => bytes.len() as f64 / 2.0 / f64::from(expected_rate),
                };
                // MP3 frames hold 1 152 samples and add the encoder's delay: within 3 %
                // on 3 s; the other formats are exact to a block.
                let tolerance = if format == OutputFormat::Mp3 {
                    0.09
                } else {
                    0.01
                };
                assert!(
                    (seconds - 3.0).abs() < tolerance,
                    "{format:?} at {rate:?}: {seconds} s"
                );
            }
        }
    }

    #[tokio::test]
    async fn compressed_formats_are_smaller_and_bitrate_counts() {
        let wav = voice_like(22_050, 5.0);
        let size = |format, bitrate_kbps| {
            let wav = wav.clone();
            async move {
                let settings = Settings {
                    format,
                    sample_rate: None,
                    bitrate_kbps,
                };
                encode(settings, wav, 8192).await.0.len()
            }
        };
        let mp3_64 = size(OutputFormat::Mp3, Some(64)).await;
        let mp3_32 = size(OutputFormat::Mp3, Some(32)).await;
        let opus = size(OutputFormat::Opus, None).await;
        assert!(mp3_64 < wav.len() / 4, "mp3 {mp3_64} vs wav {}", wav.len());
        assert!(
            mp3_32 * 3 < mp3_64 * 2,
            "32 kbit/s {mp3_32} vs 64 kbit/s {mp3_64}"
        );
        assert!(opus < wav.len() / 8, "opus {opus}");
    }

    #[tokio::test]
    async fn not_wav_and_no_audio_are_errors() {
        let settings = Settings {
            format: OutputFormat::Mp3,
            sample_rate: None,
            bitrate_kbps: None,
        };
        for input in [b"<html>oops</html>".to_vec(), pcm16_wav(22_050, &[])] {
            let mut output = transcode(
                settings,
                futures_util::stream::iter([Ok(Bytes::from(input))]).boxed(),
            );
            let mut failed = false;
            while let Some(item) = output.recv().await {
                if let Err(reason) = item {
                    assert!(reason.contains("audio"), "{reason}");
                    failed = true;
                }
            }
            assert!(failed);
        }
    }
}
