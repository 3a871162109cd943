//! MP3 through LAME (`mp3lame-encoder`, which builds the LAME library from source): constant
//! bitrate, mono. No Xing/LAME header frame: it is written at the end of encoding and a
//! streamed answer has sent its first frame long before, so every frame is plain audio.

use mp3lame_encoder::{Bitrate, Builder, Encoder, FlushNoGap, Mode, MonoPcm, Quality};

use super::Encode;

pub struct Mp3 {
    encoder: Encoder,
}

fn lame_bitrate(kbps: u32) -> Result<Bitrate, String> {
    Ok(match kbps {
        32 => Bitrate::Kbps32,
        48 => Bitrate::Kbps48,
        64 => Bitrate::Kbps64,
        96 => Bitrate::Kbps96,
        128 => Bitrate::Kbps128,
        160 => Bitrate::Kbps160,
        _ => return Err(format!("mp3 cannot be encoded at {kbps} kbps")),
    })
}

impl Mp3 {
    pub fn new(sample_rate: u32, bitrate_kbps: u32) -> Result<Mp3, String> {
        let failed = |e: mp3lame_encoder::BuildError| format!("the mp3 encoder refused: {e:?}");
        let mut builder = Builder::new().ok_or("the mp3 encoder could not start")?;
        builder.set_num_channels(1).map_err(failed)?;
        builder.set_sample_rate(sample_rate).map_err(failed)?;
        builder
            .set_brate(lame_bitrate(bitrate_kbps)?)
            .map_err(failed)?;
        builder.set_mode(Mode::Mono).map_err(failed)?;
        builder.set_quality(Quality::Good).map_err(failed)?;
        builder.set_to_write_vbr_tag(false).map_err(failed)?;
        Ok(Mp3 {
            encoder: builder.build().map_err(failed)?,
        })
    }
}

impl Encode for Mp3 {
    fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) -> Result<(), String> {
        out.reserve(mp3lame_encoder::max_required_buffer_size(samples.len()));
        self.encoder
            .encode_to_vec(MonoPcm(samples), out)
            .map_err(|e| format!("mp3 encoding failed: {e:?}"))?;
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        out.reserve(7200);
        self.encoder
            .flush_to_vec::<FlushNoGap>(out)
            .map_err(|e| format!("mp3 encoding failed: {e:?}"))?;
        Ok(())
    }
}
