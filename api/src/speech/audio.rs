//! What an audio file really is, decided from its bytes: the container's magic bytes, then a
//! walk over its structure for the duration and sample rate, and signs of truncation.
//!
//! File names and declared content types are never trusted: a client can say anything. The
//! parsers only read container structure (no decoding), so checking a 20 MiB sample is cheap,
//! and every read is bounds-checked: a hostile file yields an error, never a panic.

use std::time::Duration;

/// A container this API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    Wav,
    Mp3,
    OggOpus,
    OggVorbis,
    Flac,
    WebM,
}

impl AudioFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::OggOpus | AudioFormat::OggVorbis => "audio/ogg",
            AudioFormat::Flac => "audio/flac",
            AudioFormat::WebM => "audio/webm",
        }
    }

    /// Short name, as in the API's `format` fields.
    pub fn name(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::OggOpus => "opus",
            AudioFormat::OggVorbis => "ogg",
            AudioFormat::Flac => "flac",
            AudioFormat::WebM => "webm",
        }
    }
}

/// What inspection found.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    pub format: AudioFormat,
    pub duration: Duration,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
}

/// Why bytes are not acceptable audio; the message is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AudioError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, AudioError> {
    Err(AudioError(message.into()))
}

fn truncated<T>(what: &str) -> Result<T, AudioError> {
    err(format!("the file is truncated: {what}"))
}

/// The container named by the first bytes, if any we accept.
pub fn sniff(bytes: &[u8]) -> Option<AudioFormat> {
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
        return Some(AudioFormat::Wav);
    }
    if bytes.starts_with(b"fLaC") {
        return Some(AudioFormat::Flac);
    }
    if bytes.starts_with(b"OggS") {
        let body = bytes.get(27 + *bytes.get(26)? as usize..)?;
        if body.starts_with(b"OpusHead") {
            return Some(AudioFormat::OggOpus);
        }
        if body.starts_with(b"\x01vorbis") {
            return Some(AudioFormat::OggVorbis);
        }
        return None;
    }
    if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return Some(AudioFormat::WebM);
    }
    if bytes.starts_with(b"ID3") || mp3_frame(bytes).is_some() {
        return Some(AudioFormat::Mp3);
    }
    None
}

/// Identifies and checks audio: its format by content, its duration, and that it is whole.
pub fn inspect(bytes: &[u8]) -> Result<AudioInfo, AudioError> {
    let Some(format) = sniff(bytes) else {
        return err(
            "not a supported audio file (by its content): expected WAV, MP3, OGG (Opus or Vorbis), FLAC or WebM",
        );
    };
    match format {
        AudioFormat::Wav => wav(bytes),
        AudioFormat::Flac => flac(bytes),
        AudioFormat::Mp3 => mp3(bytes),
        AudioFormat::OggOpus | AudioFormat::OggVorbis => ogg(bytes, format),
        AudioFormat::WebM => webm(bytes),
    }
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn secs(samples: u64, rate: u32) -> Duration {
    Duration::from_secs_f64(samples as f64 / rate as f64)
}

fn wav(b: &[u8]) -> Result<AudioInfo, AudioError> {
    let mut pos = 12usize;
    let mut fmt: Option<(u16, u32, u32)> = None;
    loop {
        if pos + 8 > b.len() {
            return if fmt.is_none() {
                truncated("no fmt chunk")
            } else {
                truncated("no data chunk")
            };
        }
        let id = &b[pos..pos + 4];
        let size = u32_le(b, pos + 4).unwrap_or(0) as usize;
        let body = pos + 8;
        let available = b.len() - body;
        if id == b"fmt " {
            if size < 16 || available < 16 {
                return truncated("the fmt chunk is incomplete");
            }
            let channels = u16_le(b, body + 2).unwrap_or(0);
            let rate = u32_le(b, body + 4).unwrap_or(0);
            let byte_rate = u32_le(b, body + 8).unwrap_or(0);
            if channels == 0 || rate == 0 || byte_rate == 0 {
                return err(
                    "the WAV format chunk is invalid (no channels, sample rate or byte rate)",
                );
            }
            fmt = Some((channels, rate, byte_rate));
        } else if id == b"data" {
            let Some((channels, rate, byte_rate)) = fmt else {
                return err("the WAV data chunk comes before its format chunk");
            };
            if size > available {
                return truncated(&format!(
                    "the data chunk declares {size} bytes of audio but holds {available}"
                ));
            }
            if size == 0 {
                return err("the WAV file holds no audio");
            }
            return Ok(AudioInfo {
                format: AudioFormat::Wav,
                duration: Duration::from_secs_f64(size as f64 / byte_rate as f64),
                sample_rate: Some(rate),
                channels: Some(channels),
            });
        }
        if size > available {
            return truncated("a chunk runs past the end of the file");
        }
        pos = body + size + (size & 1);
    }
}

fn flac(b: &[u8]) -> Result<AudioInfo, AudioError> {
    let mut pos = 4usize;
    let mut info: Option<(u32, u16, u64)> = None;
    let mut max_block = 0u64;
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
    let (start, samples) = last_flac_frame(b, pos, max_block).ok_or_else(|| {
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
        duration: secs(total, rate),
        sample_rate: Some(rate),
        channels: Some(channels),
    })
}

fn crc8(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |mut crc, &byte| {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
        crc
    })
}

fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |mut crc, &byte| {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8005
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// A FLAC frame header at `at`, checked by its CRC-8: (first sample, samples in the frame).
fn flac_frame_header(b: &[u8], at: usize, max_block: u64) -> Option<(u64, u64)> {
    let h = b.get(at..at + 4)?;
    if h[0] != 0xFF || h[1] & 0xFE != 0xF8 {
        return None;
    }
    let variable = h[1] & 1 == 1;
    let block_code = h[2] >> 4;
    let rate_code = h[2] & 0x0F;
    let mut pos = at + 4;
    // The frame or sample number, coded like UTF-8 (up to 7 bytes).
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

/// The last frame of a FLAC stream, if it runs whole to the end of the file.
fn last_flac_frame(b: &[u8], frames_start: usize, max_block: u64) -> Option<(u64, u64)> {
    let lowest = frames_start.max(b.len().saturating_sub(4 * 1024 * 1024));
    let mut at = b.len().checked_sub(6)?;
    while at >= lowest {
        if b[at] == 0xFF
            && let Some(found) = flac_frame_header(b, at, max_block)
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

/// An MPEG audio frame header at the start of `b`: (frame length, samples, sample rate,
/// channels).
fn mp3_frame(b: &[u8]) -> Option<(usize, u32, u32, u16)> {
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

fn mp3(b: &[u8]) -> Result<AudioInfo, AudioError> {
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
        let Some((len, n, rate, channels)) = mp3_frame(&b[pos..]) else {
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
        duration: secs(samples, rate),
        sample_rate: Some(rate),
        channels: Some(channels),
    })
}

fn ogg(b: &[u8], format: AudioFormat) -> Result<AudioInfo, AudioError> {
    let mut pos = 0usize;
    let mut stream: Option<u32> = None;
    let (mut rate, mut pre_skip, mut channels) = (0u32, 0u64, 0u16);
    let mut last_granule: Option<u64> = None;
    let mut ended = false;
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
        duration: secs(samples, rate),
        sample_rate: Some(sample_rate),
        channels: Some(channels),
    })
}

/// A Matroska variable-length integer: (value, length). IDs keep their marker bits.
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

fn webm(b: &[u8]) -> Result<AudioInfo, AudioError> {
    // Master elements walked into; everything else is read or skipped by its size. Reading the
    // file flat, in order, also copes with the unknown-size segments and clusters that live
    // recorders (MediaRecorder) write.
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
    let mut duration: Option<f64> = None;
    let (mut rate, mut channels) = (None, None);
    let mut has_audio = false;
    let (mut cluster_time, mut last_block): (u64, Option<u64>) = (0, None);
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
            DURATION => duration = be_float(data),
            SAMPLING_FREQUENCY => rate = be_float(data).map(|r| r as u32),
            CHANNELS => channels = u16::try_from(be_uint(data)).ok(),
            TIMECODE => cluster_time = be_uint(data),
            SIMPLE_BLOCK | BLOCK => {
                if let Some((_, track_len, _)) = vint(data, 0, false)
                    && let Some(t) = data.get(track_len..track_len + 2)
                {
                    let relative = i64::from(i16::from_be_bytes([t[0], t[1]]));
                    let at = (cluster_time as i64 + relative).max(0) as u64;
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
    let nanos = match duration {
        Some(d) if d.is_finite() && d > 0.0 => d * scale as f64,
        _ => (last_block * scale) as f64,
    };
    Ok(AudioInfo {
        format: AudioFormat::WebM,
        duration: Duration::from_secs_f64((nanos / 1e9).max(0.0)),
        sample_rate: rate,
        channels,
    })
}

/// Writes a 16-bit PCM WAV of `samples` (mono). Used by tests and by providers that return
/// raw PCM.
pub fn pcm16_wav(sample_rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// Rewrites the RIFF and data chunk sizes of a WAV written to a pipe (espeak-ng's `--stdout`
/// cannot seek back to fill them in) so they match the bytes actually there.
pub fn fix_streamed_wav_sizes(bytes: &mut [u8]) {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return;
    }
    let total = bytes.len();
    bytes[4..8].copy_from_slice(&((total - 8) as u32).to_le_bytes());
    let mut pos = 12;
    while pos + 8 <= total {
        let size = u32_le(bytes, pos + 4).unwrap_or(0) as usize;
        if &bytes[pos..pos + 4] == b"data" {
            let actual = (total - pos - 8) as u32;
            bytes[pos + 4..pos + 8].copy_from_slice(&actual.to_le_bytes());
            return;
        }
        pos = pos.saturating_add(8).saturating_add(size + (size & 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, secs: f64) -> Vec<u8> {
        let n = (rate as f64 * secs) as usize;
        let samples: Vec<i16> = (0..n)
            .map(|i| ((i as f64 * 0.05).sin() * 8000.0) as i16)
            .collect();
        pcm16_wav(rate, &samples)
    }

    #[test]
    fn wav_duration_and_truncation() {
        let wav = tone(16_000, 1.5);
        let info = inspect(&wav).unwrap();
        assert_eq!(info.format, AudioFormat::Wav);
        assert_eq!(info.sample_rate, Some(16_000));
        assert!((info.duration.as_secs_f64() - 1.5).abs() < 0.01);
        let cut = &wav[..wav.len() / 2];
        assert!(inspect(cut).unwrap_err().0.contains("truncated"));
        assert!(inspect(&wav[..20]).unwrap_err().0.contains("truncated"));
    }

    #[test]
    fn streamed_wav_sizes_are_repaired() {
        let mut wav = tone(8_000, 0.5);
        wav[40..44].copy_from_slice(&0x7FFF_F000u32.to_le_bytes());
        assert!(inspect(&wav).is_err());
        fix_streamed_wav_sizes(&mut wav);
        assert!((inspect(&wav).unwrap().duration.as_secs_f64() - 0.5).abs() < 0.01);
    }

    #[test]
    fn unknown_bytes_are_refused() {
        assert!(inspect(b"hello, this is plainly text and not audio").is_err());
        assert!(inspect(&[0u8; 4096]).is_err());
    }

    fn mp3_stream(frames: usize) -> Vec<u8> {
        // MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417 bytes per frame.
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

    fn ogg_page(header_type: u8, granule: u64, body: &[u8]) -> Vec<u8> {
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

    #[test]
    fn ogg_opus_duration_needs_the_end_of_stream() {
        let mut head = b"OpusHead\x01\x01".to_vec();
        head.extend_from_slice(&312u16.to_le_bytes());
        head.extend_from_slice(&16_000u32.to_le_bytes());
        head.extend_from_slice(&[0, 0, 0]);
        let mut file = ogg_page(0x02, 0, &head);
        file.extend(ogg_page(0, 0, b"OpusTags\0\0\0\0\0\0\0\0"));
        file.extend(ogg_page(0, 48_000 + 312, &[1; 300]));
        let whole = [file.clone(), ogg_page(0x04, 96_000 + 312, &[1; 300])].concat();
        let info = inspect(&whole).unwrap();
        assert_eq!(info.format, AudioFormat::OggOpus);
        assert_eq!(info.sample_rate, Some(16_000));
        assert!((info.duration.as_secs_f64() - 2.0).abs() < 0.001);
        assert!(inspect(&file).unwrap_err().0.contains("truncated"));
    }

    fn element(id: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = id.to_vec();
        out.push(0x01);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes()[1..]);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn webm_duration_from_blocks_when_unstated() {
        let header = element(&[0x1A, 0x45, 0xDF, 0xA3], &element(&[0x42, 0x82], b"webm"));
        let audio = element(&[0xE1], &element(&[0xB5], &48_000f32.to_be_bytes()));
        let tracks = element(&[0x16, 0x54, 0xAE, 0x6B], &element(&[0xAE], &audio));
        let block = |t: i16| {
            element(
                &[0xA3],
                &[&[0x81][..], &t.to_be_bytes(), &[0x80, 1, 2, 3]].concat(),
            )
        };
        let cluster = element(
            &[0x1F, 0x43, 0xB6, 0x75],
            &[element(&[0xE7], &[0x03, 0xE8]), block(0), block(1500)].concat(),
        );
        // Unknown-size segment, as live recorders write it.
        let mut segment = vec![
            0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        segment.extend(tracks);
        segment.extend(cluster);
        let file = [header, segment].concat();
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
    fn flac_streaminfo_gives_the_duration() {
        let mut file = b"fLaC".to_vec();
        file.extend_from_slice(&[0x80, 0, 0, 34]);
        let mut info = [0u8; 34];
        // 44100 Hz, 2 channels, 16 bits, 88200 samples.
        let rate = 44_100u32;
        info[10] = (rate >> 12) as u8;
        info[11] = (rate >> 4) as u8;
        info[12] = (((rate & 0x0F) as u8) << 4) | (1 << 1);
        info[13] = 0xF0;
        info[14..18].copy_from_slice(&88_200u32.to_be_bytes());
        file.extend_from_slice(&info);
        // One frame: fixed blocks of 4096 (code 12), frame number 0, rate from STREAMINFO,
        // then a dummy body and its CRC-16. 88200 samples would need 22 frames: the
        // single frame first fails as a short stream, then passes once STREAMINFO agrees.
        let frame = |number: u8| {
            let mut f = vec![0xFF, 0xF8, 0xC0, 0x18, number];
            f.push(crc8(&f));
            f.extend_from_slice(&[0u8; 16]);
            let crc = crc16(&f);
            f.extend_from_slice(&crc.to_be_bytes());
            f
        };
        info[2..4].copy_from_slice(&4096u16.to_be_bytes());
        info[4..6].copy_from_slice(&4096u16.to_be_bytes());
        file[8..42].copy_from_slice(&info);
        file.extend(frame(0));
        assert!(inspect(&file).unwrap_err().0.contains("truncated"));
        let mut file = file[..42].to_vec();
        for n in 0..22 {
            file.extend(frame(n));
        }
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
