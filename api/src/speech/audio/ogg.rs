//! Ogg (Opus or Vorbis): a run of pages, each with a header and a lacing table that sizes its
//! body. The first page carries the codec's identification header (channels, sample rate,
//! Opus pre-skip); the duration comes from the granule position of the stream's last page,
//! and a stream without its end-of-stream page is a truncated upload.

use super::{AudioError, AudioFormat, AudioInfo, err, secs, truncated, u16_le, u32_le};

pub(super) fn parse(b: &[u8], format: AudioFormat) -> Result<AudioInfo, AudioError> {
    let mut pos = 0usize;
    let mut stream: Option<u32> = None;
    let (mut rate, mut pre_skip, mut channels) = (0u32, 0u64, 0u16);
    let mut last_granule: Option<u64> = None;
    let mut ended = false;
    // Each step moves past at least the 27-byte page header.
    while pos < b.len() {
        if b.get(pos..pos + 4) != Some(b"OggS") {
            return err(format!("corrupt Ogg data at byte {pos}"));
        }
        let Some(&segments) = b.get(pos + 26) else {
            return truncated("an Ogg page header ends early");
        };
        let table = pos + 27;
        let Some(lacing) = b.get(table..table + usize::from(segments)) else {
            return truncated("an Ogg page header ends early");
        };
        let body = table + usize::from(segments);
        let body_len: usize = lacing.iter().map(|&x| usize::from(x)).sum();
        if body + body_len > b.len() {
            return truncated("an Ogg page runs past the end of the file");
        }
        let header_type = b[pos + 5];
        let granule = u64::from_le_bytes(b[pos + 6..pos + 14].try_into().unwrap_or([0; 8]));
        let serial = u32_le(b, pos + 14).unwrap_or(0);
        let page = &b[body..body + body_len];
        match stream {
            None => {
                stream = Some(serial);
                if format == AudioFormat::OggOpus {
                    channels = page.get(9).copied().map(u16::from).unwrap_or(0);
                    pre_skip = u64::from(u16_le(page, 10).unwrap_or(0));
                    rate = 48_000;
                } else {
                    channels = page.get(11).copied().map(u16::from).unwrap_or(0);
                    rate = u32_le(page, 12).unwrap_or(0);
                }
                if rate == 0 || channels == 0 {
                    return err("the Ogg identification header is invalid");
                }
            }
            Some(s) if s == serial => {
                // -1: no packet ends on this page.
                if granule != u64::MAX {
                    last_granule = Some(granule);
                }
                if header_type & 0x04 != 0 {
                    ended = true;
                }
            }
            Some(_) => {}
        }
        pos = body + body_len;
    }
    if !ended {
        return truncated("the Ogg stream has no end-of-stream page");
    }
    let Some(granule) = last_granule else {
        return err("the Ogg file holds no audio");
    };
    let samples = granule.saturating_sub(pre_skip);
    let sample_rate = if format == AudioFormat::OggOpus {
        u32_le(b, 27 + usize::from(b[26]) + 12)
            .filter(|&r| r > 0)
            .unwrap_or(48_000)
    } else {
        rate
    };
    Ok(AudioInfo {
        format,
        // A crafted granule over a Vorbis rate of 1 Hz is more seconds than a `Duration`
        // holds: an error, not a panic.
        duration: secs(samples, rate)?,
        sample_rate: Some(sample_rate),
        channels: Some(channels),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::inspect;
    use super::*;

    pub(in crate::speech::audio) fn ogg_page(
        header_type: u8,
        granule: u64,
        body: &[u8],
    ) -> Vec<u8> {
        let mut page = b"OggS\x00".to_vec();
        page.push(header_type);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&7u32.to_le_bytes());
        page.extend_from_slice(&[0; 8]);
        let mut lacing = vec![255u8; body.len() / 255];
        lacing.push((body.len() % 255) as u8);
        page.push(lacing.len() as u8);
        page.extend_from_slice(&lacing);
        page.extend_from_slice(body);
        page
    }

    /// Opus at 16 kHz input rate with a pre-skip of 312: the header pages and one page of
    /// audio ending at one second, without the end-of-stream page.
    fn opus_without_end() -> Vec<u8> {
        let mut head = b"OpusHead\x01\x01".to_vec();
        head.extend_from_slice(&312u16.to_le_bytes());
        head.extend_from_slice(&16_000u32.to_le_bytes());
        head.extend_from_slice(&[0, 0, 0]);
        let mut file = ogg_page(0x02, 0, &head);
        file.extend(ogg_page(0, 0, b"OpusTags\0\0\0\0\0\0\0\0"));
        file.extend(ogg_page(0, 48_000 + 312, &[1; 300]));
        file
    }

    /// A whole two-second Opus stream.
    pub(in crate::speech::audio) fn opus_file() -> Vec<u8> {
        [opus_without_end(), ogg_page(0x04, 96_000 + 312, &[1; 300])].concat()
    }

    /// A whole Vorbis stream of `granule` samples at `rate`, mono.
    pub(in crate::speech::audio) fn vorbis_file(rate: u32, granule: u64) -> Vec<u8> {
        let mut ident = b"\x01vorbis".to_vec();
        ident.extend_from_slice(&0u32.to_le_bytes());
        ident.push(1);
        ident.extend_from_slice(&rate.to_le_bytes());
        ident.extend_from_slice(&[0; 13]);
        let mut file = ogg_page(0x02, 0, &ident);
        file.extend(ogg_page(0, 0, b"\x03vorbis\0\0\0\0\0\0\0\0\x01"));
        file.extend(ogg_page(0, granule / 2, &[1; 8]));
        file.extend(ogg_page(0x04, granule, &[1; 8]));
        file
    }

    #[test]
    fn ogg_opus_duration_needs_the_end_of_stream() {
        let file = opus_without_end();
        let info = inspect(&opus_file()).unwrap();
        assert_eq!(info.format, AudioFormat::OggOpus);
        assert_eq!(info.sample_rate, Some(16_000));
        assert!((info.duration.as_secs_f64() - 2.0).abs() < 0.001);
        assert!(inspect(&file).unwrap_err().0.contains("truncated"));
    }

    #[test]
    fn ogg_vorbis_duration_from_the_last_granule() {
        let info = inspect(&vorbis_file(44_100, 88_200)).unwrap();
        assert_eq!(info.format, AudioFormat::OggVorbis);
        assert_eq!(info.sample_rate, Some(44_100));
        assert_eq!(info.channels, Some(1));
        assert!((info.duration.as_secs_f64() - 2.0).abs() < 0.001);
    }

    /// Regression: a Vorbis stream at 1 Hz whose last granule is near 2^64 states more seconds
    /// than a `Duration` holds; `Duration::from_secs_f64` panicked on it.
    #[test]
    fn ogg_impossible_duration_is_an_error_not_a_panic() {
        let file = vorbis_file(1, u64::MAX - 1);
        assert!(
            inspect(&file)
                .unwrap_err()
                .0
                .contains("impossible duration")
        );
    }
}
