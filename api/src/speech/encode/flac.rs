//! FLAC through `flacenc` (pure Rust): 16-bit mono in fixed blocks of 4 096 samples, each
//! encoded as soon as it is full.
//!
//! A stream cannot know its length up front, so the STREAMINFO block first says "total
//! unknown" (allowed by the format); the stored object gets the real total when sealed.

use flacenc::{
    bitsink::MemSink,
    component::{BitRepr, StreamInfo},
    config,
    error::{Verified, Verify},
    source::{Fill, FrameBuf},
};

use super::Encode;

const BLOCK: usize = 4096;
/// The FLAC format's smallest block; a shorter last block is padded with silence.
const MIN_BLOCK: usize = 32;
/// Where STREAMINFO's rate/channels/bits/total field sits: "fLaC", the block header, then
/// four size fields (2 + 2 + 3 + 3 bytes).
const RATE_FIELD_AT: usize = 4 + 4 + 10;

pub struct Flac {
    config: Verified<config::Encoder>,
    info: StreamInfo,
    sample_rate: u32,
    block: Vec<i32>,
    frames: usize,
    total: u64,
    header_written: bool,
}

impl Flac {
    pub fn new(sample_rate: u32) -> Result<Flac, String> {
        let config = config::Encoder::default()
            .into_verified()
            .map_err(|e| format!("the flac encoder refused its settings: {e:?}"))?;
        let info = StreamInfo::new(sample_rate as usize, 1, 16)
            .map_err(|e| format!("the flac encoder refused {sample_rate} Hz: {e:?}"))?;
        Ok(Flac {
            config,
            info,
            sample_rate,
            block: Vec::with_capacity(BLOCK),
            frames: 0,
            total: 0,
            header_written: false,
        })
    }

    /// The 64 bits of rate (20), channels - 1 (3), bits - 1 (5) and total samples (36).
    fn rate_field(&self, total: u64) -> [u8; 8] {
        let packed =
            (u64::from(self.sample_rate) << 44) | (15u64 << 36) | (total & ((1 << 36) - 1));
        packed.to_be_bytes()
    }

    fn write_header(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"fLaC");
        // Last metadata block, type 0 (STREAMINFO), 34 bytes.
        out.extend_from_slice(&[0x80, 0, 0, 34]);
        out.extend_from_slice(&(BLOCK as u16).to_be_bytes());
        out.extend_from_slice(&(BLOCK as u16).to_be_bytes());
        // Minimum and maximum frame sizes: unknown.
        out.extend_from_slice(&[0; 6]);
        out.extend_from_slice(&self.rate_field(0));
        // MD5 of the samples: unknown (all zero).
        out.extend_from_slice(&[0; 16]);
        self.header_written = true;
    }

    fn encode_block(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let failed = |e: String| format!("flac encoding failed: {e}");
        let mut buffer =
            FrameBuf::with_size(1, self.block.len()).map_err(|e| failed(format!("{e:?}")))?;
        buffer
            .fill_interleaved(&self.block)
            .map_err(|e| failed(format!("{e:?}")))?;
        let frame =
            flacenc::encode_fixed_size_frame(&self.config, &buffer, self.frames, &self.info)
                .map_err(|e| failed(format!("{e:?}")))?;
        let mut sink = MemSink::<u8>::with_capacity(self.block.len() * 16);
        frame
            .write(&mut sink)
            .map_err(|e| failed(format!("{e:?}")))?;
        out.extend_from_slice(sink.as_slice());
        self.frames += 1;
        self.block.clear();
        Ok(())
    }
}

impl Encode for Flac {
    fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) -> Result<(), String> {
        if !self.header_written {
            self.write_header(out);
        }
        self.total += samples.len() as u64;
        for &sample in samples {
            self.block.push(i32::from(sample));
            if self.block.len() == BLOCK {
                self.encode_block(out)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if !self.header_written {
            self.write_header(out);
        }
        if !self.block.is_empty() {
            if self.block.len() < MIN_BLOCK {
                self.block.resize(MIN_BLOCK, 0);
            }
            self.encode_block(out)?;
        }
        Ok(())
    }

    fn seal(&self, whole: &mut [u8]) {
        if whole.len() >= RATE_FIELD_AT + 8 {
            whole[RATE_FIELD_AT..RATE_FIELD_AT + 8].copy_from_slice(&self.rate_field(self.total));
        }
    }
}
