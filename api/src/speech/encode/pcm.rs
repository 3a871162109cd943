//! The uncompressed outputs: `wav` (16-bit PCM in RIFF) and `pcm` (the same samples, raw
//! little-endian, no header; the rate is in the generation record and the `x-sample-rate`
//! header).

use super::Encode;
use crate::speech::audio::fix_streamed_wav_sizes;

pub struct Pcm {
    /// Some(rate) writes a WAV header first; its sizes are filled in when sealed.
    wav_header: Option<u32>,
}

impl Pcm {
    pub fn raw() -> Pcm {
        Pcm { wav_header: None }
    }

    pub fn wav(sample_rate: u32) -> Pcm {
        Pcm {
            wav_header: Some(sample_rate),
        }
    }
}

impl Encode for Pcm {
    fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) -> Result<(), String> {
        if let Some(rate) = self.wav_header.take() {
            // Sizes unknown while streaming: the maximum, as streaming writers do.
            out.extend_from_slice(b"RIFF");
            out.extend_from_slice(&u32::MAX.to_le_bytes());
            out.extend_from_slice(b"WAVEfmt ");
            out.extend_from_slice(&16u32.to_le_bytes());
            out.extend_from_slice(&1u16.to_le_bytes()); // PCM
            out.extend_from_slice(&1u16.to_le_bytes()); // mono
            out.extend_from_slice(&rate.to_le_bytes());
            out.extend_from_slice(&(rate * 2).to_le_bytes());
            out.extend_from_slice(&2u16.to_le_bytes());
            out.extend_from_slice(&16u16.to_le_bytes());
            out.extend_from_slice(b"data");
            out.extend_from_slice(&u32::MAX.to_le_bytes());
        }
        out.reserve(samples.len() * 2);
        for sample in samples {
            out.extend_from_slice(&sample.to_le_bytes());
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        self.encode(&[], out)
    }

    fn seal(&self, whole: &mut [u8]) {
        fix_streamed_wav_sizes(whole);
    }
}
