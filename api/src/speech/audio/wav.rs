//! WAV (RIFF/WAVE): a chain of chunks, each an id and a little-endian size. The `fmt ` chunk
//! gives channels, sample rate and byte rate; the duration is the `data` chunk's size over the
//! byte rate, and a `data` chunk that claims more bytes than the file holds is a truncated
//! upload. Also writes WAV (for tests and raw-PCM providers) and repairs the sizes of one
//! streamed to a pipe.

use super::{AudioError, AudioFormat, AudioInfo, duration, err, truncated, u16_le, u32_le};

pub(super) fn parse(b: &[u8]) -> Result<AudioInfo, AudioError> {
    let mut pos = 12usize;
    let mut fmt: Option<(u16, u32, u32)> = None;
    // Each step moves past at least the 8-byte chunk header.
    loop {
        if pos + 8 > b.len() {
            return if fmt.is_none() {
                truncated("no fmt chunk")
            } else {
                truncated("no data chunk")
            };
        }
        let id = &b[pos..pos + 4];
        let size = u32_le(b, pos + 4).unwrap_or(0) as usize;
        let body = pos + 8;
        let available = b.len() - body;
        if id == b"fmt " {
            if size < 16 || available < 16 {
                return truncated("the fmt chunk is incomplete");
            }
            let channels = u16_le(b, body + 2).unwrap_or(0);
            let rate = u32_le(b, body + 4).unwrap_or(0);
            let byte_rate = u32_le(b, body + 8).unwrap_or(0);
            if channels == 0 || rate == 0 || byte_rate == 0 {
                return err(
                    "the WAV format chunk is invalid (no channels, sample rate or byte rate)",
                );
            }
            fmt = Some((channels, rate, byte_rate));
        } else if id == b"data" {
            let Some((channels, rate, byte_rate)) = fmt else {
                return err("the WAV data chunk comes before its format chunk");
            };
            if size > available {
                return truncated(&format!(
                    "the data chunk declares {size} bytes of audio but holds {available}"
                ));
            }
            if size == 0 {
                return err("the WAV file holds no audio");
            }
            return Ok(AudioInfo {
                format: AudioFormat::Wav,
                duration: duration(size as f64 / byte_rate as f64)?,
                sample_rate: Some(rate),
                channels: Some(channels),
            });
        }
        if size > available {
            return truncated("a chunk runs past the end of the file");
        }
        pos = body + size + (size & 1);
    }
}

/// Writes a 16-bit PCM WAV of `samples` (mono). Used by tests and by providers that return
/// raw PCM.
pub fn pcm16_wav(sample_rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// Rewrites the RIFF and data chunk sizes of a WAV written to a pipe (espeak-ng's `--stdout`
/// cannot seek back to fill them in) so they match the bytes actually there.
pub fn fix_streamed_wav_sizes(bytes: &mut [u8]) {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return;
    }
    let total = bytes.len();
    bytes[4..8].copy_from_slice(&((total - 8) as u32).to_le_bytes());
    let mut pos = 12;
    while pos + 8 <= total {
        let size = u32_le(bytes, pos + 4).unwrap_or(0) as usize;
        if &bytes[pos..pos + 4] == b"data" {
            let actual = (total - pos - 8) as u32;
            bytes[pos + 4..pos + 8].copy_from_slice(&actual.to_le_bytes());
            return;
        }
        pos = pos.saturating_add(8).saturating_add(size + (size & 1));
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::inspect;
    use super::*;

    /// A mono 16-bit tone of `secs` seconds.
    pub(in crate::speech::audio) fn tone(rate: u32, secs: f64) -> Vec<u8> {
        let n = (rate as f64 * secs) as usize;
        let samples: Vec<i16> = (0..n)
            .map(|i| ((i as f64 * 0.05).sin() * 8000.0) as i16)
            .collect();
        pcm16_wav(rate, &samples)
    }

    #[test]
    fn wav_duration_and_truncation() {
        let wav = tone(16_000, 1.5);
        let info = inspect(&wav).unwrap();
        assert_eq!(info.format, AudioFormat::Wav);
        assert_eq!(info.sample_rate, Some(16_000));
        assert!((info.duration.as_secs_f64() - 1.5).abs() < 0.01);
        let cut = &wav[..wav.len() / 2];
        assert!(inspect(cut).unwrap_err().0.contains("truncated"));
        assert!(inspect(&wav[..20]).unwrap_err().0.contains("truncated"));
    }

    #[test]
    fn streamed_wav_sizes_are_repaired() {
        let mut wav = tone(8_000, 0.5);
        wav[40..44].copy_from_slice(&0x7FFF_F000u32.to_le_bytes());
        assert!(inspect(&wav).is_err());
        fix_streamed_wav_sizes(&mut wav);
        assert!((inspect(&wav).unwrap().duration.as_secs_f64() - 0.5).abs() < 0.01);
    }
}
