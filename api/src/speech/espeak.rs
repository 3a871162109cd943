//! The `espeak` provider: the local espeak-ng program, offline, WAV output read as it is
//! written (espeak-ng writes each sentence as soon as it is synthesized).
//!
//! The text goes to the program's standard input and every setting is a separate argument, so
//! no shell ever sees client input. The child is killed if the caller gives up (timeout).

use std::{path::PathBuf, process::Stdio};

use bytes::Bytes;
use futures_util::{StreamExt, stream::BoxStream};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::{Child, ChildStdout, Command},
    task::JoinHandle,
};

use super::{SpeechProvider, SynthesisRequest};

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

    fn supports_pitch(&self) -> bool {
        true
    }

    fn synthesize(&self, request: SynthesisRequest) -> BoxStream<'static, Result<Bytes, String>> {
        let program = self.program.clone();
        let started = async move {
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
            let mut stdin = child.stdin.take().ok_or("espeak-ng has no input")?;
            let stdout = child.stdout.take().ok_or("espeak-ng has no output")?;
            let mut stderr = child.stderr.take().ok_or("espeak-ng has no error output")?;
            // Written and read concurrently: espeak-ng speaks while it reads.
            tokio::spawn(async move {
                let _ = stdin.write_all(request.text.as_bytes()).await;
                let _ = stdin.write_all(b"\n").await;
            });
            let errors = tokio::spawn(async move {
                let mut text = String::new();
                let _ = (&mut stderr)
                    .take(64 * 1024)
                    .read_to_string(&mut text)
                    .await;
                text
            });
            Ok(Running {
                child,
                stdout,
                errors: Some(errors),
                produced: 0,
            })
        };
        futures_util::stream::once(started)
            .flat_map(|started| match started {
                Ok(running) => running.into_stream().boxed(),
                Err(reason) => futures_util::stream::once(async move { Err(reason) }).boxed(),
            })
            .boxed()
    }
}

/// A running espeak-ng: its audio, then its exit status. Dropping it kills the program.
struct Running {
    child: Child,
    stdout: ChildStdout,
    errors: Option<JoinHandle<String>>,
    produced: usize,
}

impl Running {
    fn into_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, String>> {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut running = state?;
            let mut buffer = vec![0u8; 16 * 1024];
            match running.stdout.read(&mut buffer).await {
                Ok(0) => running.end().await.err().map(|e| (Err(e), None)),
                Ok(n) => {
                    buffer.truncate(n);
                    running.produced += n;
                    Some((Ok(Bytes::from(buffer)), Some(running)))
                }
                Err(e) => Some((Err(format!("reading espeak-ng's audio failed: {e}")), None)),
            }
        })
    }

    /// After the last byte: the exit status, with what espeak-ng said when it failed.
    async fn end(mut self) -> Result<(), String> {
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| format!("espeak-ng failed: {e}"))?;
        let stderr = match self.errors.take() {
            Some(errors) => errors.await.unwrap_or_default(),
            None => String::new(),
        };
        let said = stderr.trim().chars().take(300).collect::<String>();
        if !status.success() {
            return Err(format!("espeak-ng exited with {status}: {said}"));
        }
        if self.produced <= 44 {
            return Err(if said.is_empty() {
                "espeak-ng produced no audio".to_string()
            } else {
                format!("espeak-ng produced no audio: {said}")
            });
        }
        Ok(())
    }
}
