//! WebM (Matroska with DocType `webm`): EBML elements, each an ID and a size coded as
//! variable-length integers. The walk is flat: it steps into the master elements on the way to
//! what it needs (DocType, timecode scale, stated duration, the audio track's rate and
//! channels, block timecodes) and skips everything else by its size, which also copes with the
//! unknown-size segments and clusters that live recorders (MediaRecorder) write. Without a
//! stated duration the last block's timecode stands for it; an element that runs past the end
//! of the file means a truncated upload.

use super::{AudioError, AudioFormat, AudioInfo, duration, err, truncated};

/// A Matroska variable-length integer: (value, length, whether it is the reserved "unknown
/// size" value). IDs keep their marker bits.
fn vint(b: &[u8], at: usize, keep_marker: bool) -> Option<(u64, usize, bool)> {
    let first = *b.get(at)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = b.get(at..at + len)?;
    let mut value = if keep_marker {
        u64::from(first)
    } else {
        u64::from(first) & (0xFF >> len)
    };
    for &x in &bytes[1..] {
        value = (value << 8) | u64::from(x);
    }
    let unknown = !keep_marker && value == (1u64 << (7 * len)) - 1;
    Some((value, len, unknown))
}

fn be_uint(b: &[u8]) -> u64 {
    b.iter()
        .take(8)
        .fold(0, |acc, &x| (acc << 8) | u64::from(x))
}

fn be_float(b: &[u8]) -> Option<f64> {
    match b.len() {
        4 => Some(f64::from(f32::from_be_bytes(b.try_into().ok()?))),
        8 => Some(f64::from_be_bytes(b.try_into().ok()?)),
        _ => None,
    }
}

pub(super) fn parse(b: &[u8]) -> Result<AudioInfo, AudioError> {
    // Master elements walked into; everything else is read or skipped by its size.
    const EBML: u64 = 0x1A45_DFA3;
    const SEGMENT: u64 = 0x1853_8067;
    const INFO: u64 = 0x1549_A966;
    const TRACKS: u64 = 0x1654_AE6B;
    const TRACK_ENTRY: u64 = 0xAE;
    const AUDIO: u64 = 0xE1;
    const CLUSTER: u64 = 0x1F43_B675;
    const BLOCK_GROUP: u64 = 0xA0;
    const DOC_TYPE: u64 = 0x4282;
    const TIMECODE_SCALE: u64 = 0x2A_D7B1;
    const DURATION: u64 = 0x4489;
    const SAMPLING_FREQUENCY: u64 = 0xB5;
    const CHANNELS: u64 = 0x9F;
    const TIMECODE: u64 = 0xE7;
    const SIMPLE_BLOCK: u64 = 0xA3;
    const BLOCK: u64 = 0xA1;

    let mut pos = 0usize;
    let mut doc_type: Option<String> = None;
    let mut scale = 1_000_000u64;
    let mut stated: Option<f64> = None;
    let (mut rate, mut channels) = (None, None);
    let mut has_audio = false;
    let (mut cluster_time, mut last_block): (u64, Option<u64>) = (0, None);
    // Each step moves past at least the element's header (an ID and a size, a byte or more
    // each), even for an element of size zero.
    while pos < b.len() {
        let Some((id, id_len, _)) = vint(b, pos, true) else {
            return err(format!("corrupt WebM element at byte {pos}"));
        };
        let Some((size, size_len, unknown)) = vint(b, pos + id_len, false) else {
            return truncated("an element header ends early");
        };
        let body = pos + id_len + size_len;
        if matches!(
            id,
            EBML | SEGMENT | INFO | TRACKS | TRACK_ENTRY | AUDIO | CLUSTER | BLOCK_GROUP
        ) {
            if id == AUDIO {
                has_audio = true;
            }
            pos = body;
            continue;
        }
        if unknown {
            return err(format!(
                "unsupported WebM element of unknown size at byte {pos}"
            ));
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > b.len() - body.min(b.len()) {
            return truncated("an element runs past the end of the file");
        }
        let data = &b[body..body + size];
        match id {
            DOC_TYPE => doc_type = Some(String::from_utf8_lossy(data).into_owned()),
            TIMECODE_SCALE => scale = be_uint(data).max(1),
            DURATION => stated = be_float(data),
            SAMPLING_FREQUENCY => rate = be_float(data).map(|r| r as u32),
            CHANNELS => channels = u16::try_from(be_uint(data)).ok(),
            TIMECODE => cluster_time = be_uint(data),
            SIMPLE_BLOCK | BLOCK => {
                if let Some((_, track_len, _)) = vint(data, 0, false)
                    && let Some(t) = data.get(track_len..track_len + 2)
                {
                    let relative = i64::from(i16::from_be_bytes([t[0], t[1]]));
                    // Saturating: a crafted cluster timecode near 2^63 overflowed here.
                    let at = (cluster_time as i64).saturating_add(relative).max(0) as u64;
                    last_block = Some(last_block.map_or(at, |l| l.max(at)));
                }
            }
            _ => {}
        }
        pos = body + size;
    }
    match doc_type.as_deref() {
        Some("webm") => {}
        Some(other) => return err(format!("a Matroska file of type '{other}', not WebM")),
        None => return err("the WebM header has no DocType"),
    }
    if !has_audio {
        return err("the WebM file has no audio track");
    }
    let Some(last_block) = last_block else {
        return err("the WebM file holds no audio");
    };
    // Crafted timecodes, scale or stated duration can make the product overflow or exceed what
    // a `Duration` holds: an error, where these panicked.
    let nanos = match stated {
        Some(d) if d.is_finite() && d > 0.0 => d * scale as f64,
        _ => match last_block.checked_mul(scale) {
            Some(nanos) => nanos as f64,
            None => return err("the file states an impossible duration"),
        },
    };
    Ok(AudioInfo {
        format: AudioFormat::WebM,
        duration: duration((nanos / 1e9).max(0.0))?,
        sample_rate: rate,
        channels,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::inspect;
    use super::*;

    /// An element with a one-byte-marker, 7-byte size (as muxers that patch sizes write).
    fn element(id: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = id.to_vec();
        out.push(0x01);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes()[1..]);
        out.extend_from_slice(body);
        out
    }

    /// A SimpleBlock on track 1 at `t` past its cluster's timecode.
    fn block(t: i16) -> Vec<u8> {
        element(
            &[0xA3],
            &[&[0x81][..], &t.to_be_bytes(), &[0x80, 1, 2, 3]].concat(),
        )
    }

    /// The EBML header, then an unknown-size segment (as live recorders write it) with `info`,
    /// a 48 kHz audio track and one cluster at `cluster_time` holding `blocks`.
    fn webm_with(info: &[u8], cluster_time: &[u8], blocks: &[Vec<u8>]) -> Vec<u8> {
        let header = element(&[0x1A, 0x45, 0xDF, 0xA3], &element(&[0x42, 0x82], b"webm"));
        let audio = element(&[0xE1], &element(&[0xB5], &48_000f32.to_be_bytes()));
        let tracks = element(&[0x16, 0x54, 0xAE, 0x6B], &element(&[0xAE], &audio));
        let cluster = element(
            &[0x1F, 0x43, 0xB6, 0x75],
            &[element(&[0xE7], cluster_time), blocks.concat()].concat(),
        );
        let mut segment = vec![
            0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        segment.extend_from_slice(info);
        segment.extend(tracks);
        segment.extend(cluster);
        [header, segment].concat()
    }

    /// An Info element with an 8-byte TimecodeScale and, if any, the `stated` duration (in
    /// timecode-scale units).
    fn info(scale: u64, stated: Option<f64>) -> Vec<u8> {
        let mut body = element(&[0x2A, 0xD7, 0xB1], &scale.to_be_bytes());
        if let Some(stated) = stated {
            body.extend(element(&[0x44, 0x89], &stated.to_be_bytes()));
        }
        element(&[0x15, 0x49, 0xA9, 0x66], &body)
    }

    /// Blocks at 1000 and 2500 timecode units (2.5 s at the default scale of 1 ms), then an
    /// Info element if a `scale` is given.
    pub(in crate::speech::audio) fn webm_file(scale: Option<u64>, stated: Option<f64>) -> Vec<u8> {
        let info = scale.map(|scale| info(scale, stated)).unwrap_or_default();
        webm_with(&info, &[0x03, 0xE8], &[block(0), block(1500)])
    }

    #[test]
    fn webm_duration_from_blocks_when_unstated() {
        let file = webm_file(None, None);
        let info = inspect(&file).unwrap();
        assert_eq!(info.format, AudioFormat::WebM);
        assert_eq!(info.sample_rate, Some(48_000));
        assert!((info.duration.as_secs_f64() - 2.5).abs() < 0.001);
        assert!(
            inspect(&file[..file.len() - 3])
                .unwrap_err()
                .0
                .contains("truncated")
        );
    }

    #[test]
    fn webm_stated_duration_and_scale() {
        let at = |scale, stated| inspect(&webm_file(Some(scale), stated)).unwrap().duration;
        assert_eq!(at(1_000_000, Some(3000.0)).as_secs_f64(), 3.0);
        assert_eq!(at(500_000, None).as_secs_f64(), 1.25);
        assert_eq!(at(500_000, Some(3000.0)).as_secs_f64(), 1.5);
    }

    /// Regression: a cluster timecode of i64::MAX plus a positive block offset overflowed an
    /// `i64` (a panic in debug builds), and a huge last block times the timecode scale
    /// overflowed a `u64` (likewise).
    #[test]
    fn webm_huge_timecodes_are_errors_not_panics() {
        let file = webm_with(&[], &i64::MAX.to_be_bytes(), &[block(1)]);
        assert!(
            inspect(&file)
                .unwrap_err()
                .0
                .contains("impossible duration")
        );
        let file = webm_with(&[], &(u64::MAX / 1000).to_be_bytes(), &[block(0)]);
        assert!(
            inspect(&file)
                .unwrap_err()
                .0
                .contains("impossible duration")
        );
    }

    /// Regression: a stated duration that, times the timecode scale, is more seconds than a
    /// `Duration` holds (or is infinite) made `Duration::from_secs_f64` panic, in release
    /// builds too.
    #[test]
    fn webm_huge_stated_duration_is_an_error_not_a_panic() {
        for stated in [1e300, f64::MAX] {
            let file = webm_with(&info(1_000_000, Some(stated)), &[0x03, 0xE8], &[block(0)]);
            assert!(
                inspect(&file)
                    .unwrap_err()
                    .0
                    .contains("impossible duration")
            );
        }
    }
}
