//! Property tests: no byte string makes the parsers panic (which is also how an out-of-bounds
//! read shows in safe Rust) or fail to return. Three sources of input: arbitrary bytes; a
//! format's magic bytes followed by arbitrary bytes, so every parser sees random structure;
//! and a valid small file of each format, built here, with a few bytes flipped, set, inserted,
//! removed, duplicated or cut off, which reaches the paths deep inside each parser.
//!
//! Each input runs on a watchdog thread: a panic or a call still running after [`LIMIT`]
//! fails the case (and proptest shrinks it). By default 512 cases for each random-bytes
//! property and 2048 for the cheaper, more searching mutations, about two seconds in all;
//! set `PROPTEST_CASES` for a longer run. A failure is saved under `api/proptest-regressions/`
//! and replayed first on the next run: fix it and keep the input as a unit test beside the
//! parser rather than committing that file.

use std::{
    panic,
    sync::mpsc::{self, RecvTimeoutError},
    thread,
    time::Duration,
};

use proptest::{prelude::*, sample::Index};

use super::{
    AudioFormat, fix_streamed_wav_sizes,
    flac::tests::flac_file,
    inspect,
    mp3::tests::mp3_stream,
    ogg::tests::{ogg_page, opus_file, vorbis_file},
    sniff,
    wav::tests::tone,
    webm::tests::webm_file,
};

/// How long one input may take through every entry point: far above the few milliseconds a
/// 64 KiB input takes in a debug build (with room for a machine busy with other builds, where
/// 1 s was once exceeded), far below a hang.
const LIMIT: Duration = Duration::from_secs(5);

/// Every entry point that reads untrusted bytes.
fn every_entry_point(bytes: Vec<u8>) {
    let sniffed = sniff(&bytes);
    if let Ok(info) = inspect(&bytes) {
        assert_eq!(Some(info.format), sniffed, "inspect and sniff disagree");
    }
    let mut repaired = bytes;
    fix_streamed_wav_sizes(&mut repaired);
    let _ = inspect(&repaired);
}

/// Runs `f` on `bytes` on its own thread; an error says it panicked or did not return within
/// `limit` (its thread is then left behind).
fn within_limit(bytes: Vec<u8>, limit: Duration, f: fn(Vec<u8>)) -> Result<(), String> {
    let (done, outcome) = mpsc::channel();
    thread::spawn(move || {
        let result = panic::catch_unwind(move || f(bytes));
        let _ = done.send(result.map_err(|payload| {
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        }));
    });
    match outcome.recv_timeout(limit) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(format!("panicked: {message}")),
        Err(RecvTimeoutError::Timeout) => Err(format!("still running after {limit:?}")),
        Err(RecvTimeoutError::Disconnected) => Err("its thread died".into()),
    }
}

fn run_bounded(bytes: Vec<u8>) -> Result<(), String> {
    within_limit(bytes, LIMIT, every_entry_point)
}

/// A valid small file of each format (each is checked to parse in `seeds_are_valid`).
fn seeds() -> Vec<(AudioFormat, Vec<u8>)> {
    vec![
        (AudioFormat::Wav, tone(8_000, 0.002)),
        (AudioFormat::Mp3, mp3_stream(3)),
        (AudioFormat::OggOpus, opus_file()),
        (AudioFormat::OggVorbis, vorbis_file(44_100, 88_200)),
        // The lowest rate the parser takes, where a large granule is the most seconds.
        (AudioFormat::OggVorbis, vorbis_file(1, 2)),
        (AudioFormat::Flac, flac_file(22)),
        (AudioFormat::WebM, webm_file(None, None)),
        (AudioFormat::WebM, webm_file(Some(1_000_000), None)),
        (AudioFormat::WebM, webm_file(Some(1_000_000), Some(2500.0))),
    ]
}

/// The first bytes that send input to each parser.
fn magics() -> Vec<Vec<u8>> {
    vec![
        b"RIFF\0\0\0\0WAVE".to_vec(),
        b"RIFF\0\0\0\0WAVEfmt ".to_vec(),
        b"fLaC".to_vec(),
        b"fLaC\x00\x00\x00\x22".to_vec(),
        ogg_page(0x02, 0, b"OpusHead\x01\x02\x38\x01\x80\xbb\0\0\0\0\0"),
        ogg_page(0x02, 0, b"\x01vorbis\0\0\0\0\x01\x44\xac\0\0"),
        vec![0x1A, 0x45, 0xDF, 0xA3],
        b"ID3\x04\0\0\0\0\0\0".to_vec(),
        vec![0xFF, 0xFB, 0x90, 0x00],
    ]
}

/// Values that sit on the edges parsers check: zero, one, sign bits, all ones, and (as bits)
/// floats too big for a duration.
const EDGES: [u64; 18] = [
    0,
    1,
    2,
    0x22,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0xFFFF,
    0x7FFF_FFFF,
    0xFFFF_FFFE,
    0xFFFF_FFFF,
    0x7FFF_FFFF_FFFF_FFFF,
    u64::MAX - 1,
    u64::MAX,
    0x7FEF_FFFF_FFFF_FFFF, // f64::MAX
    0x7FF0_0000_0000_0000, // f64::INFINITY
    0x7F7F_FFFF,           // f32::MAX
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    Set(Index, u8),
    /// An edge value or a random one, `width` bytes of it in either byte order.
    Overwrite(Index, u64, usize, bool),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    /// A copy of `len` bytes from the first index, inserted at the second.
    Duplicate(Index, usize, Index),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let value = prop_oneof![3 => proptest::sample::select(&EDGES[..]), 1 => any::<u64>()];
    prop_oneof![
        3 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, v)| Mutation::Set(at, v)),
        3 => (any::<Index>(), value, proptest::sample::select(&[1usize, 2, 3, 4, 8][..]), any::<bool>())
            .prop_map(|(at, v, width, be)| Mutation::Overwrite(at, v, width, be)),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..32))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        1 => (any::<Index>(), 1..64usize).prop_map(|(at, len)| Mutation::Remove(at, len)),
        1 => (any::<Index>(), 1..600usize, any::<Index>())
            .prop_map(|(from, len, to)| Mutation::Duplicate(from, len, to)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match mutation {
        Mutation::FlipBit(at, bit) => bytes[at.index(len)] ^= 1 << bit,
        Mutation::Set(at, v) => bytes[at.index(len)] = *v,
        Mutation::Overwrite(at, value, width, big_endian) => {
            let word = if *big_endian {
                value.to_be_bytes()[8 - width..].to_vec()
            } else {
                value.to_le_bytes()[..*width].to_vec()
            };
            let at = at.index(len);
            let end = (at + width).min(len);
            bytes[at..end].copy_from_slice(&word[..end - at]);
        }
        Mutation::Insert(at, inserted) => {
            let at = at.index(len + 1);
            bytes.splice(at..at, inserted.iter().copied());
        }
        Mutation::Remove(at, n) => {
            let at = at.index(len);
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Duplicate(from, n, to) => {
            let from = from.index(len);
            let copy = bytes[from..(from + n).min(len)].to_vec();
            let to = to.index(len + 1);
            bytes.splice(to..to, copy);
        }
        Mutation::Truncate(at) => bytes.truncate(at.index(len)),
    }
}

/// `cases` unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> ProptestConfig {
    let defaults = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            defaults.cases
        } else {
            cases
        },
        // A hang leaves its watchdog's thread spinning: bound the shrinking that would pile
        // them up.
        max_shrink_time: 30_000,
        ..defaults
    }
}

proptest! {
    // Up to 64 KiB each: generating them is most of the time these take.
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_are_refused_or_parsed(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            proptest::collection::vec(any::<u8>(), 0..=64 * 1024),
        ]
    ) {
        prop_assert_eq!(run_bounded(bytes), Ok(()));
    }

    #[test]
    fn magic_then_arbitrary_bytes_are_refused_or_parsed(
        magic in proptest::sample::select(magics()),
        tail in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            proptest::collection::vec(any::<u8>(), 0..=64 * 1024),
        ],
    ) {
        prop_assert_eq!(run_bounded([magic, tail].concat()), Ok(()));
    }
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn mutated_valid_files_are_refused_or_parsed(
        seed in proptest::sample::select(seeds()),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let (_, mut bytes) = seed;
        for m in &mutations {
            apply(&mut bytes, m);
        }
        prop_assert_eq!(run_bounded(bytes), Ok(()));
    }
}

/// The seeds must be valid, or the mutations would start from an early error and miss the
/// deep paths.
#[test]
fn seeds_are_valid() {
    for (format, bytes) in seeds() {
        let info = inspect(&bytes).unwrap_or_else(|e| panic!("{format:?} seed: {e}"));
        assert_eq!(info.format, format);
        assert!(!info.duration.is_zero(), "{format:?} seed has no duration");
    }
}

/// The watchdog turns a panic and a hang into failures, not a crash or a stuck test.
#[test]
fn the_watchdog_reports_panics_and_hangs() {
    assert_eq!(run_bounded(b"RIFF\0\0\0\0WAVE".to_vec()), Ok(()));
    let panicked = within_limit(vec![1, 2], LIMIT, |b| {
        std::hint::black_box(b[5]);
    });
    assert!(
        panicked
            .unwrap_err()
            .contains("panicked: index out of bounds")
    );
    let hung = within_limit(vec![], LIMIT, |_| thread::sleep(LIMIT * 2));
    assert!(hung.unwrap_err().contains("still running"));
}

/// Inputs built to make each walk take the most steps it can (the smallest chunk, frame,
/// page or element, over and over; for FLAC, near-miss frame headers all the way back to the
/// metadata) still finish: linear walks take a few hundred milliseconds over 1 MiB in a
/// debug build on a busy machine, a walk worse than linear would take hours.
#[test]
fn inputs_with_the_most_steps_finish_in_time() {
    const SIZE: usize = 1024 * 1024;
    const GENEROUS: Duration = Duration::from_secs(10);
    fn fill(mut bytes: Vec<u8>, unit: &[u8]) -> Vec<u8> {
        while bytes.len() + unit.len() <= SIZE {
            bytes.extend_from_slice(unit);
        }
        bytes
    }
    let mut flac = flac_file(0);
    flac.extend_from_slice(&[0xFF, 0xF8]);
    // MPEG-2 Layer III, 8 kbit/s, 24 kHz, mono: 24-byte frames, the shortest.
    let mut mp3_frame = [0u8; 24];
    mp3_frame[..4].copy_from_slice(&[0xFF, 0xF3, 0x14, 0xC0]);
    let inputs = [
        (
            fill(b"RIFF\0\0\0\0WAVE".to_vec(), b"junk\0\0\0\0"),
            Err("no fmt chunk"),
        ),
        (
            fill(flac, &[0xFF, 0xF8, 0xC0, 0x18, 0x00, 0x00]),
            Err("the last FLAC frame is incomplete"),
        ),
        (fill(Vec::new(), &mp3_frame), Ok(AudioFormat::Mp3)),
        (
            fill(vorbis_file(44_100, 88_200), &ogg_page(0, 5, &[])),
            Ok(AudioFormat::OggVorbis),
        ),
        (
            fill(vec![0x1A, 0x45, 0xDF, 0xA3, 0x80], &[0xEC, 0x80]),
            Err("no DocType"),
        ),
    ];
    for (bytes, expected) in inputs {
        // Each walks to the end of its input, not out at an early error.
        match (inspect(&bytes), expected) {
            (Ok(info), Ok(format)) => assert_eq!(info.format, format),
            (Err(e), Err(message)) => assert!(e.0.contains(message), "{e}"),
            (got, expected) => panic!("{got:?}, expected {expected:?}"),
        }
        assert_eq!(within_limit(bytes, GENEROUS, every_entry_point), Ok(()));
    }
}
