//! Sample-rate conversion for a requested `sample_rate` (and for Opus, which takes only
//! 8, 12, 16, 24 or 48 kHz): rubato's FFT resampler, fed in fixed chunks as samples arrive.
//!
//! The resampler's own delay is trimmed from the front and the tail is cut to the exact
//! converted length, so the output lasts as long as the input.

use rubato::{FftFixedIn, Resampler as _};

/// Input frames per resampler call: about 23 ms at 22 050 Hz, small enough for streaming.
const CHUNK: usize = 512;

pub struct Resampler {
    inner: FftFixedIn<f32>,
    from: u32,
    to: u32,
    /// Input not yet resampled (less than one chunk).
    pending: Vec<f32>,
    /// Output frames still to drop from the front (the resampler's delay).
    skip: usize,
    input_frames: u64,
    output_frames: u64,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Result<Resampler, String> {
        let inner = FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 1)
            .map_err(|e| format!("cannot resample {from} Hz to {to} Hz: {e}"))?;
        let skip = inner.output_delay();
        Ok(Resampler {
            inner,
            from,
            to,
            pending: Vec::with_capacity(CHUNK),
            skip,
            input_frames: 0,
            output_frames: 0,
        })
    }

    /// Resamples what `input` completes, appending to `out`.
    pub fn push(&mut self, input: &[i16], out: &mut Vec<i16>) -> Result<(), String> {
        self.input_frames += input.len() as u64;
        for &sample in input {
            self.pending.push(f32::from(sample) / 32_768.0);
            if self.pending.len() == self.inner.input_frames_next() {
                let output = self
                    .inner
                    .process(&[&self.pending], None)
                    .map_err(|e| format!("resampling failed: {e}"))?;
                self.pending.clear();
                self.emit(&output[0], out);
            }
        }
        Ok(())
    }

    /// Flushes the tail: pads with silence until the converted length is out.
    pub fn finish(&mut self, out: &mut Vec<i16>) -> Result<(), String> {
        let wanted = self.input_frames * u64::from(self.to) / u64::from(self.from);
        let partial = std::mem::take(&mut self.pending);
        let mut first = true;
        // Each call yields a full chunk, so a few calls always suffice; the bound is a guard.
        for _ in 0..64 {
            if self.output_frames >= wanted {
                break;
            }
            let output = if first {
                self.inner.process_partial(Some(&[&partial]), None)
            } else {
                self.inner.process_partial::<Vec<f32>>(None, None)
            }
            .map_err(|e| format!("resampling failed: {e}"))?;
            first = false;
            let room = usize::try_from(wanted - self.output_frames).unwrap_or(usize::MAX);
            self.emit_at_most(&output[0], out, room);
        }
        Ok(())
    }

    fn emit(&mut self, frames: &[f32], out: &mut Vec<i16>) {
        self.emit_at_most(frames, out, usize::MAX);
    }

    fn emit_at_most(&mut self, frames: &[f32], out: &mut Vec<i16>, room: usize) {
        let dropped = self.skip.min(frames.len());
        self.skip -= dropped;
        let kept = &frames[dropped..];
        let kept = &kept[..kept.len().min(room)];
        self.output_frames += kept.len() as u64;
        out.extend(
            kept.iter()
                .map(|s| (s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_lasts_as_long_as_the_input() {
        for (from, to) in [(22_050, 48_000), (22_050, 16_000), (24_000, 44_100)] {
            let input: Vec<i16> = (0..from as usize * 2)
                .map(|i| {
                    ((i as f64 * 440.0 * std::f64::consts::TAU / from as f64).sin() * 10_000.0)
                        as i16
                })
                .collect();
            let mut resampler = Resampler::new(from, to).unwrap();
            let mut out = vec![];
            for chunk in input.chunks(1000) {
                resampler.push(chunk, &mut out).unwrap();
            }
            resampler.finish(&mut out).unwrap();
            assert_eq!(out.len() as u64, 2 * u64::from(to), "{from} -> {to}");
            // A 440 Hz tone keeps its loudness (no silence from a misplaced delay).
            let middle = &out[out.len() / 4..out.len() * 3 / 4];
            let peak = middle.iter().map(|s| s.unsigned_abs()).max().unwrap();
            assert!(
                (9_000..=11_000).contains(&peak),
                "{from} -> {to}: peak {peak}"
            );
        }
    }
}
