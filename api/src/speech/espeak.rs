//! The `espeak` provider: the local espeak-ng program, offline, WAV output.
//!
//! The text goes to the program's standard input and every setting is a separate argument, so
//! no shell ever sees client input. The child is killed if the caller gives up (timeout).

use std::{path::PathBuf, process::Stdio};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::{io::AsyncWriteExt, process::Command};

use super::{OutputFormat, SpeechProvider, SynthesisRequest, audio::fix_streamed_wav_sizes};

/// espeak-ng's default speaking rate in words per minute (speed 1.0).
const BASE_WPM: f64 = 175.0;
/// espeak-ng's default pitch (0..=99); the API's pitch is an offset from it.
const BASE_PITCH: i32 = 50;

pub struct Espeak {
    program: PathBuf,
}

impl Espeak {
    /// The program, when it can be found (a path, or a name on PATH).
    pub fn locate(program: &str) -> Option<Espeak> {
        let candidate = PathBuf::from(program);
        if candidate.components().count() > 1 {
            return candidate.is_file().then_some(Espeak { program: candidate });
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|path| path.is_file())
                .map(|program| Espeak { program })
        })
    }
}

/// An espeak voice name as stored for voices (`en-us+f3`): plain characters only.
fn valid_voice(voice: &str) -> bool {
    !voice.is_empty()
        && voice.len() <= 64
        && voice
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'+' || b == b'_')
}

impl SpeechProvider for Espeak {
    fn name(&self) -> &'static str {
        "espeak"
    }

    fn supports(&self, format: OutputFormat) -> bool {
        format == OutputFormat::Wav
    }

    fn supports_pitch(&self) -> bool {
        true
    }

    fn synthesize(&self, request: SynthesisRequest) -> BoxFuture<'static, Result<Bytes, String>> {
        let program = self.program.clone();
        Box::pin(async move {
            if !valid_voice(&request.espeak_voice) {
                return Err(format!("invalid espeak voice {:?}", request.espeak_voice));
            }
            let wpm = (BASE_WPM * request.speed).round().clamp(80.0, 450.0) as i32;
            let pitch = (BASE_PITCH + request.pitch).clamp(0, 99);
            let mut child = Command::new(&program)
                .arg("-v")
                .arg(&request.espeak_voice)
                .arg("-s")
                .arg(wpm.to_string())
                .arg("-p")
                .arg(pitch.to_string())
                .arg("--stdout")
                .arg("--stdin")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(request.text.as_bytes())
                    .await
                    .map_err(|e| format!("cannot send the text to espeak-ng: {e}"))?;
                stdin.write_all(b"\n").await.ok();
            }
            let output = child
                .wait_with_output()
                .await
                .map_err(|e| format!("espeak-ng failed: {e}"))?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !output.status.success() {
                return Err(format!(
                    "espeak-ng exited with {}: {}",
                    output.status,
                    stderr.trim().chars().take(300).collect::<String>()
                ));
            }
            if output.stdout.len() <= 44 {
                return Err(format!(
                    "espeak-ng produced no audio{}",
                    if stderr.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", stderr.trim().chars().take(300).collect::<String>())
                    }
                ));
            }
            let mut wav = output.stdout;
            fix_streamed_wav_sizes(&mut wav);
            Ok(Bytes::from(wav))
        })
    }
}
