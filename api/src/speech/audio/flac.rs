//! FLAC: the `fLaC` marker, a chain of metadata blocks (STREAMINFO gives the sample rate,
//! channels and total samples), then audio frames. STREAMINFO states the length, so a whole
//! file must have a last frame, found by scanning back from the end for a header that passes
//! its CRC-8 and a frame that passes its CRC-16, that reaches the stated total; otherwise the
//! upload is truncated.

use super::{AudioError, AudioFormat, AudioInfo, err, secs, truncated};

pub(super) fn parse(b: &[u8]) -> Result<AudioInfo, AudioError> {
    let mut pos = 4usize;
    let mut info: Option<(u32, u16, u64)> = None;
    let mut max_block = 0u64;
    // Each step moves past at least the 4-byte block header.
    loop {
        let Some(&header) = b.get(pos) else {
            return truncated("the metadata ends early");
        };
        let len = b
            .get(pos + 1..pos + 4)
            .map(|l| u32::from_be_bytes([0, l[0], l[1], l[2]]) as usize)
            .ok_or_else(|| AudioError("the file is truncated: the metadata ends early".into()))?;
        let body = pos + 4;
        if body + len > b.len() {
            return truncated("a metadata block runs past the end of the file");
        }
        if header & 0x7F == 0 {
            if len < 34 {
                return err("the FLAC STREAMINFO block is invalid");
            }
            let s = &b[body..body + 34];
            let rate = (u32::from(s[10]) << 12) | (u32::from(s[11]) << 4) | (u32::from(s[12]) >> 4);
            let channels = u16::from((s[12] >> 1) & 0x07) + 1;
            let total = (u64::from(s[13] & 0x0F) << 32)
                | u64::from(u32::from_be_bytes([s[14], s[15], s[16], s[17]]));
            info = Some((rate, channels, total));
            max_block = u64::from(u16::from_be_bytes([s[2], s[3]]));
        }
        pos = body + len;
        if header & 0x80 != 0 {
            break;
        }
    }
    let Some((rate, channels, total)) = info else {
        return err("the FLAC file has no STREAMINFO block");
    };
    if rate == 0 {
        return err("the FLAC sample rate is invalid");
    }
    if total == 0 {
        return err("the FLAC file does not state its length");
    }
    // Audio frames start with the 14-bit sync code 0b11111111111110.
    match b.get(pos..pos + 2) {
        Some([0xFF, second]) if second & 0xFE == 0xF8 => {}
        Some(_) => return err("the FLAC metadata is not followed by audio frames"),
        None => return truncated("no audio frames follow the metadata"),
    }
    // The last frame must end the stream: its header says where it starts and how many
    // samples it holds, and its CRC-16 covers it up to the end of the file.
    let (start, samples) = last_frame(b, pos, max_block).ok_or_else(|| {
        AudioError("the file is truncated: the last FLAC frame is incomplete".into())
    })?;
    if start + samples < total {
        return truncated(&format!(
            "the audio ends at sample {} of {total}",
            start + samples
        ));
    }
    Ok(AudioInfo {
        format: AudioFormat::Flac,
        duration: secs(total, rate)?,
        sample_rate: Some(rate),
        channels: Some(channels),
    })
}

/// FLAC's frame-header CRC-8 (polynomial 0x07, initial 0: CRC-8/SMBUS).
const FRAME_HEADER_CRC: crc::Crc<u8> = crc::Crc::<u8>::new(&crc::CRC_8_SMBUS);

/// FLAC's whole-frame CRC-16 (polynomial 0x8005, initial 0: CRC-16/UMTS).
const FRAME_CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_UMTS);

fn crc8(data: &[u8]) -> u8 {
    FRAME_HEADER_CRC.checksum(data)
}

fn crc16(data: &[u8]) -> u16 {
    FRAME_CRC.checksum(data)
}

/// A FLAC frame header at `at`, checked by its CRC-8: (first sample, samples in the frame).
fn frame_header(b: &[u8], at: usize, max_block: u64) -> Option<(u64, u64)> {
    let h = b.get(at..at + 4)?;
    if h[0] != 0xFF || h[1] & 0xFE != 0xF8 {
        return None;
    }
    let variable = h[1] & 1 == 1;
    let block_code = h[2] >> 4;
    let rate_code = h[2] & 0x0F;
    let mut pos = at + 4;
    // The frame or sample number, coded like UTF-8 (up to 7 bytes, 36 bits): times a 16-bit
    // block size it cannot overflow.
    let first = *b.get(pos)?;
    let extra = match first.leading_ones() {
        0 => 0,
        n @ 2..=7 => n as usize - 1,
        _ => return None,
    };
    let mut number = u64::from(first & (0x7F >> extra));
    for i in 1..=extra {
        let c = *b.get(pos + i)?;
        if c & 0xC0 != 0x80 {
            return None;
        }
        number = (number << 6) | u64::from(c & 0x3F);
    }
    pos += 1 + extra;
    let block = match block_code {
        1 => 192,
        2..=5 => 576 << (block_code - 2),
        6 => {
            pos += 1;
            u64::from(*b.get(pos - 1)?) + 1
        }
        7 => {
            pos += 2;
            u64::from(u16::from_be_bytes([*b.get(pos - 2)?, *b.get(pos - 1)?])) + 1
        }
        8..=15 => 256 << (block_code - 8),
        _ => return None,
    };
    pos += match rate_code {
        12 => 1,
        13 | 14 => 2,
        15 => return None,
        _ => 0,
    };
    if crc8(b.get(at..pos)?) != *b.get(pos)? {
        return None;
    }
    let start = if variable {
        number
    } else {
        number * max_block.max(1)
    };
    Some((start, block))
}

/// The last frame of a FLAC stream, if it runs whole to the end of the file. The search back
/// for its header covers at most the last 4 MiB, one byte a step.
fn last_frame(b: &[u8], frames_start: usize, max_block: u64) -> Option<(u64, u64)> {
    let lowest = frames_start.max(b.len().saturating_sub(4 * 1024 * 1024));
    let mut at = b.len().checked_sub(6)?;
    while at >= lowest {
        if b[at] == 0xFF
            && let Some(found) = frame_header(b, at, max_block)
        {
            let body = &b[at..b.len() - 2];
            let stated = u16::from_be_bytes([b[b.len() - 2], b[b.len() - 1]]);
            return (crc16(body) == stated).then_some(found);
        }
        if at == 0 {
            break;
        }
        at -= 1;
    }
    None
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::inspect;
    use super::*;

    /// The marker and a last-block STREAMINFO: 44100 Hz, 2 channels, 16 bits, 88200 samples,
    /// fixed blocks of 4096.
    fn header() -> Vec<u8> {
        let mut file = b"fLaC".to_vec();
        file.extend_from_slice(&[0x80, 0, 0, 34]);
        let mut info = [0u8; 34];
        let rate = 44_100u32;
        info[2..4].copy_from_slice(&4096u16.to_be_bytes());
        info[4..6].copy_from_slice(&4096u16.to_be_bytes());
        info[10] = (rate >> 12) as u8;
        info[11] = (rate >> 4) as u8;
        info[12] = (((rate & 0x0F) as u8) << 4) | (1 << 1);
        info[13] = 0xF0;
        info[14..18].copy_from_slice(&88_200u32.to_be_bytes());
        file.extend_from_slice(&info);
        file
    }

    /// One frame: fixed blocks of 4096 (code 12), frame `number`, rate from STREAMINFO, then
    /// a dummy body and its CRC-16.
    fn frame(number: u8) -> Vec<u8> {
        let mut f = vec![0xFF, 0xF8, 0xC0, 0x18, number];
        f.push(crc8(&f));
        f.extend_from_slice(&[0u8; 16]);
        let crc = crc16(&f);
        f.extend_from_slice(&crc.to_be_bytes());
        f
    }

    /// The header and the first `frames` frames; 22 make the whole two seconds.
    pub(in crate::speech::audio) fn flac_file(frames: u8) -> Vec<u8> {
        let mut file = header();
        for n in 0..frames {
            file.extend(frame(n));
        }
        file
    }

    /// The check values of the polynomials FLAC names (what the hand-written loops these
    /// replaced computed too): the frames below are built with the same functions, so without
    /// this a wrong polynomial would pass unnoticed.
    #[test]
    fn crcs_are_flacs() {
        assert_eq!(crc8(b"123456789"), 0xF4);
        assert_eq!(crc16(b"123456789"), 0xFEE8);
    }

    #[test]
    fn flac_streaminfo_gives_the_duration() {
        // 88200 samples need 22 frames of 4096: a single frame is a short stream.
        assert!(inspect(&flac_file(1)).unwrap_err().0.contains("truncated"));
        let file = flac_file(22);
        let parsed = inspect(&file).unwrap();
        assert_eq!(parsed.sample_rate, Some(44_100));
        assert_eq!(parsed.channels, Some(2));
        assert!((parsed.duration.as_secs_f64() - 2.0).abs() < 0.001);
        assert!(inspect(&file[..30]).unwrap_err().0.contains("truncated"));
        assert!(
            inspect(&file[..file.len() - 5])
                .unwrap_err()
                .0
                .contains("truncated")
        );
    }
}
