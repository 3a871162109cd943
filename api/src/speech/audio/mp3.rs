//! MP3: an optional ID3v2 tag, then a run of MPEG audio frames with no container around them.
//! Each frame header gives its own length, sample count and rate, so the duration is the sum
//! over the frames, and a last frame that runs past the end of the file means a truncated
//! upload. A frame header also identifies the format when there is no ID3 tag.

use super::{AudioError, AudioFormat, AudioInfo, err, secs, truncated};

/// An MPEG audio frame header at the start of `b`: (frame length, samples, sample rate,
/// channels). The length is at least 4, so a walk over frames always moves on.
pub(super) fn frame(b: &[u8]) -> Option<(usize, u32, u32, u16)> {
    let h = b.get(0..4)?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 0: 2.5, 2: 2, 3: 1
    let layer = (h[1] >> 1) & 3; // 1: III, 2: II, 3: I
    let bitrate_index = (h[2] >> 4) as usize;
    let rate_index = ((h[2] >> 2) & 3) as usize;
    let padding = u32::from((h[2] >> 1) & 1);
    if version == 1 || layer == 0 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    const V1: [[u32; 16]; 3] = [
        [
            0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 0,
        ],
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 0,
        ],
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0,
        ],
    ];
    const V2: [[u32; 16]; 2] = [
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 0,
        ],
        [
            0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0,
        ],
    ];
    let layer_row = (3 - layer) as usize; // 0: I, 1: II, 2: III
    let kbps = if version == 3 {
        V1[layer_row][bitrate_index]
    } else {
        V2[usize::from(layer_row != 0)][bitrate_index]
    };
    let rate = [44100u32, 48000, 32000][rate_index]
        >> match version {
            3 => 0,
            2 => 1,
            _ => 2,
        };
    let bps = kbps * 1000;
    let (len, samples) = match layer_row {
        0 => ((12 * bps / rate + padding) * 4, 384),
        1 => (144 * bps / rate + padding, 1152),
        _ if version == 3 => (144 * bps / rate + padding, 1152),
        _ => (72 * bps / rate + padding, 576),
    };
    let channels = if (h[3] >> 6) == 3 { 1 } else { 2 };
    (len >= 4).then_some((len as usize, samples, rate, channels))
}

pub(super) fn parse(b: &[u8]) -> Result<AudioInfo, AudioError> {
    let mut pos = 0usize;
    if b.starts_with(b"ID3") {
        let Some(s) = b.get(6..10) else {
            return truncated("the ID3 tag ends early");
        };
        let size = s
            .iter()
            .fold(0usize, |acc, &x| (acc << 7) | usize::from(x & 0x7F));
        let footer = if b[5] & 0x10 != 0 { 10 } else { 0 };
        pos = 10 + size + footer;
        if pos >= b.len() {
            return truncated("no audio follows the ID3 tag");
        }
    }
    let (mut frames, mut samples) = (0u64, 0u64);
    let mut format: Option<(u32, u16)> = None;
    while pos < b.len() {
        let Some((len, n, rate, channels)) = frame(&b[pos..]) else {
            break;
        };
        if pos + len > b.len() {
            return truncated(&format!(
                "MPEG frame {} runs past the end of the file",
                frames + 1
            ));
        }
        format.get_or_insert((rate, channels));
        frames += 1;
        samples += u64::from(n);
        pos += len;
    }
    let Some((rate, channels)) = format else {
        return err("no MPEG audio frames found");
    };
    if frames < 2 {
        return err("the MP3 file holds no audio");
    }
    Ok(AudioInfo {
        format: AudioFormat::Mp3,
        duration: secs(samples, rate)?,
        sample_rate: Some(rate),
        channels: Some(channels),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::inspect;
    use super::*;

    /// An ID3 tag, then `frames` frames of MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no
    /// padding: 417 bytes per frame.
    pub(in crate::speech::audio) fn mp3_stream(frames: usize) -> Vec<u8> {
        let mut out = b"ID3\x04\x00\x00\x00\x00\x00\x05hello".to_vec();
        for _ in 0..frames {
            let mut frame = vec![0u8; 417];
            frame[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x00]);
            out.extend_from_slice(&frame);
        }
        out
    }

    #[test]
    fn mp3_frames_are_counted() {
        let mp3 = mp3_stream(100);
        let info = inspect(&mp3).unwrap();
        assert_eq!(info.format, AudioFormat::Mp3);
        assert_eq!(info.sample_rate, Some(44_100));
        assert!((info.duration.as_secs_f64() - 100.0 * 1152.0 / 44_100.0).abs() < 0.001);
        assert!(
            inspect(&mp3[..mp3.len() - 100])
                .unwrap_err()
                .0
                .contains("truncated")
        );
    }
}
