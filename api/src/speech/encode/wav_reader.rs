//! Reads 16-bit PCM WAV as it arrives, chunk by chunk, whatever the chunk boundaries: a
//! provider's audio is decoded while it is still being produced.
//!
//! A WAV written to a pipe (espeak-ng's `--stdout`) cannot fill in its data size, so a size
//! of 0 or one near 4 GiB means "to the end of the stream". Stereo is mixed down to mono:
//! speech is mono, and every encoder here takes one channel.

/// Largest header (everything before the samples) accepted, so a stream that never reaches
/// its `data` chunk is refused rather than buffered.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// A declared data size at or above this is a placeholder written by a streaming writer.
const STREAMED_SIZE: u32 = 0x7FFF_0000;

#[derive(Debug, Default)]
pub struct WavReader {
    /// Bytes not yet consumed (the header while it is incomplete, or half a sample frame).
    pending: Vec<u8>,
    spec: Option<Spec>,
}

/// What the header says, once it has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub sample_rate: u32,
    pub channels: u16,
    /// Sample bytes still to come, when the header gave a real size.
    remaining: Option<u64>,
}

impl WavReader {
    /// The header's facts, once read.
    pub fn spec(&self) -> Option<Spec> {
        self.spec
    }

    /// Consumes `bytes`, appending the mono samples they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<i16>) -> Result<(), String> {
        self.pending.extend_from_slice(bytes);
        if self.spec.is_none() {
            match parse_header(&self.pending)? {
                None if self.pending.len() > MAX_HEADER_BYTES => {
                    return Err("the audio has no data chunk".into());
                }
                None => return Ok(()),
                Some((spec, data_start)) => {
                    self.spec = Some(spec);
                    self.pending.drain(..data_start);
                }
            }
        }
        let Some(spec) = self.spec.as_mut() else {
            return Ok(());
        };
        let mut usable = self.pending.len();
        if let Some(remaining) = spec.remaining.as_mut() {
            usable = usable.min(usize::try_from(*remaining).unwrap_or(usize::MAX));
        }
        let frame = 2 * usize::from(spec.channels);
        let whole = usable - usable % frame;
        for samples in self.pending[..whole].chunks_exact(frame) {
            let sum: i32 = samples
                .chunks_exact(2)
                .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
                .sum();
            out.push((sum / i32::from(spec.channels)) as i16);
        }
        if let Some(remaining) = spec.remaining.as_mut() {
            *remaining -= whole as u64;
            if *remaining < frame as u64 {
                // Whatever follows the data chunk (a LIST chunk, say) is not audio.
                self.pending.clear();
                return Ok(());
            }
        }
        self.pending.drain(..whole);
        Ok(())
    }

    /// Called at the end of the stream: an error if no header was ever read.
    pub fn finish(&self) -> Result<Spec, String> {
        self.spec
            .ok_or_else(|| "the provider returned no audio (no WAV header)".to_string())
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The header and where the samples start, or None while more bytes are needed.
fn parse_header(b: &[u8]) -> Result<Option<(Spec, usize)>, String> {
    if b.len() < 12 {
        return Ok(None);
    }
    if &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err("the provider's audio is not WAV".into());
    }
    let mut pos = 12usize;
    let mut format: Option<(u32, u16)> = None;
    loop {
        if b.len() < pos + 8 {
            return Ok(None);
        }
        let id = &b[pos..pos + 4];
        let size = u32_at(b, pos + 4);
        let body = pos + 8;
        if id == b"data" {
            let Some((sample_rate, channels)) = format else {
                return Err("the WAV audio has no fmt chunk before its data".into());
            };
            let remaining = (size != 0 && size < STREAMED_SIZE).then_some(u64::from(size));
            let spec = Spec {
                sample_rate,
                channels,
                remaining,
            };
            return Ok(Some((spec, body)));
        }
        let size = size as usize;
        if id == b"fmt " {
            if b.len() < body + 16 {
                return Ok(None);
            }
            if size < 16 {
                return Err("the WAV fmt chunk is too short".into());
            }
            let (tag, channels) = (u16_at(b, body), u16_at(b, body + 2));
            let (rate, bits) = (u32_at(b, body + 4), u16_at(b, body + 14));
            // 0xFFFE is WAVE_FORMAT_EXTENSIBLE, used for plain PCM by some writers.
            if !(tag == 1 || tag == 0xFFFE) || bits != 16 {
                return Err("the WAV audio is not 16-bit PCM".into());
            }
            if !(1..=2).contains(&channels) || !(8_000..=192_000).contains(&rate) {
                return Err(format!(
                    "unsupported WAV audio: {channels} channels at {rate} Hz"
                ));
            }
            format = Some((rate, channels));
        }
        pos = body
            .checked_add(size + (size & 1))
            .filter(|p| *p <= MAX_HEADER_BYTES)
            .ok_or("the WAV header is too large")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::audio::pcm16_wav;

    #[test]
    fn any_chunking_reads_the_same_samples() {
        let samples: Vec<i16> = (0..1000).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
        let wav = pcm16_wav(22_050, &samples);
        for step in [1, 2, 3, 7, 44, 45, 1000, 5000] {
            let mut reader = WavReader::default();
            let mut out = vec![];
            for chunk in wav.chunks(step) {
                reader.push(chunk, &mut out).unwrap();
            }
            assert_eq!(out, samples, "chunks of {step}");
            assert_eq!(reader.finish().unwrap().sample_rate, 22_050);
        }
    }

    #[test]
    fn a_streamed_size_reads_to_the_end_and_a_real_one_stops_at_it() {
        let samples: Vec<i16> = vec![1, 2, 3, 4];
        let mut wav = pcm16_wav(16_000, &samples);
        let data_size_at = wav.len() - 8 - 4;
        wav[data_size_at..data_size_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut out = vec![];
        let mut reader = WavReader::default();
        reader.push(&wav, &mut out).unwrap();
        reader.push(&[5, 0], &mut out).unwrap();
        assert_eq!(out, vec![1, 2, 3, 4, 5]);

        let mut trailing = pcm16_wav(16_000, &samples);
        trailing.extend_from_slice(b"LIST\x04\x00\x00\x00abcd");
        let mut out = vec![];
        WavReader::default().push(&trailing, &mut out).unwrap();
        assert_eq!(out, samples);
    }

    #[test]
    fn not_wav_is_an_error() {
        let mut out = vec![];
        assert!(
            WavReader::default()
                .push(b"ID3\x04 not a wav at all", &mut out)
                .is_err()
        );
        assert!(WavReader::default().finish().is_err());
    }
}
