//! Opus in Ogg (RFC 7845) through libopus (the `opus` crate; libopus is built from source):
//! 20 ms packets, mono, `OpusHead` and `OpusTags` first, a page flushed every 200 ms so a
//! streamed answer plays while it is produced.
//!
//! Granule positions count 48 kHz samples whatever the input rate; the last page's says
//! where the real audio ends, so the padding after it is not played.

use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use opus::{Application, Bitrate, Channels, Encoder};

use super::Encode;

/// Any serial number will do for a single-stream file.
const SERIAL: u32 = 0x5245_534f;
/// Packets per Ogg page (10 × 20 ms).
const PACKETS_PER_PAGE: u64 = 10;
/// Largest Opus packet (RFC 6716 § 3.4).
const MAX_PACKET: usize = 1275;

pub struct Opus {
    encoder: Encoder,
    writer: PacketWriter<'static, Vec<u8>>,
    /// Samples per 20 ms packet at the input rate.
    frame: usize,
    /// 48 kHz samples per input sample.
    scale: u64,
    pre_skip: u64,
    pending: Vec<i16>,
    /// Input samples encoded so far (padding excluded).
    encoded: u64,
    packets: u64,
    header_written: bool,
    sample_rate: u32,
}

impl Opus {
    /// `sample_rate` must be one Opus takes: 8, 12, 16, 24 or 48 kHz.
    pub fn new(sample_rate: u32, bitrate_kbps: u32) -> Result<Opus, String> {
        let failed = |e: opus::Error| format!("the opus encoder refused: {e}");
        let mut encoder =
            Encoder::new(sample_rate, Channels::Mono, Application::Audio).map_err(failed)?;
        encoder
            .set_bitrate(Bitrate::Bits(bitrate_kbps as i32 * 1000))
            .map_err(failed)?;
        let scale = u64::from(48_000 / sample_rate);
        let lookahead = u64::try_from(encoder.get_lookahead().map_err(failed)?).unwrap_or(0);
        Ok(Opus {
            encoder,
            writer: PacketWriter::new(Vec::new()),
            frame: sample_rate as usize / 50,
            scale,
            pre_skip: lookahead * scale,
            pending: Vec::new(),
            encoded: 0,
            packets: 0,
            header_written: false,
            sample_rate,
        })
    }

    fn write_headers(&mut self) -> Result<(), String> {
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(1); // channels
        head.extend_from_slice(&(self.pre_skip as u16).to_le_bytes());
        head.extend_from_slice(&self.sample_rate.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // channel mapping family: mono/stereo
        let vendor = b"resonance";
        let mut tags = Vec::with_capacity(16 + vendor.len());
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes()); // no user comments
        // Each header packet ends its own page, as RFC 7845 requires.
        self.write(head, PacketWriteEndInfo::EndPage, 0)?;
        self.write(tags, PacketWriteEndInfo::EndPage, 0)?;
        self.header_written = true;
        Ok(())
    }

    fn write(
        &mut self,
        packet: Vec<u8>,
        end: PacketWriteEndInfo,
        granule: u64,
    ) -> Result<(), String> {
        self.writer
            .write_packet(packet, SERIAL, end, granule)
            .map_err(|e| format!("writing the ogg stream failed: {e}"))
    }

    /// Encodes one packet of `self.frame` samples; `real` of them are audio, the rest padding.
    fn encode_packet(&mut self, samples: &[i16], real: usize, last: bool) -> Result<(), String> {
        let mut packet = vec![0u8; MAX_PACKET];
        let len = self
            .encoder
            .encode(samples, &mut packet)
            .map_err(|e| format!("opus encoding failed: {e}"))?;
        packet.truncate(len);
        self.encoded += real as u64;
        self.packets += 1;
        // A page's granule counts every sample decoded so far, the pre-skip included; the
        // last one says where the real audio ends instead.
        let granule = if last {
            self.pre_skip + self.encoded * self.scale
        } else {
            self.packets * self.frame as u64 * self.scale
        };
        let end = if last {
            PacketWriteEndInfo::EndStream
        } else if self.packets.is_multiple_of(PACKETS_PER_PAGE) {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        self.write(packet, end, granule)
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        out.append(self.writer.inner_mut());
    }
}

impl Encode for Opus {
    fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) -> Result<(), String> {
        if !self.header_written {
            self.write_headers()?;
        }
        self.pending.extend_from_slice(samples);
        let frame = self.frame;
        let whole = self.pending.len() - self.pending.len() % frame;
        let ready: Vec<i16> = self.pending.drain(..whole).collect();
        for packet in ready.chunks_exact(frame) {
            self.encode_packet(packet, frame, false)?;
        }
        self.drain(out);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if !self.header_written {
            self.write_headers()?;
        }
        // The last packet carries the remaining samples, then the encoder's look-ahead is
        // flushed with silence so the end of the audio is not cut off.
        let real = self.pending.len();
        let mut last = std::mem::take(&mut self.pending);
        last.resize(self.frame, 0);
        let flush_packets = (self.pre_skip / self.scale).div_ceil(self.frame as u64) as usize;
        if flush_packets == 0 {
            self.encode_packet(&last, real, true)?;
        } else {
            self.encode_packet(&last, real, false)?;
            let silence = vec![0i16; self.frame];
            for i in 0..flush_packets {
                // The look-ahead belongs to the audio; the rest of the silence does not.
                self.encode_packet(&silence, 0, i + 1 == flush_packets)?;
            }
        }
        self.drain(out);
        Ok(())
    }
}
