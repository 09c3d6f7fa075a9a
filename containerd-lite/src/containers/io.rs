//! A process's stdio between the shim and skiffd: fifos in the container's directory, a copier
//! per output stream feeding the json-file log (the init only) and the attached clients, and
//! the stdin fifo the attached clients write to.
//!
//! The fifos are opened `O_RDWR` (Linux allows it on a fifo, fifo(7)): the open never waits
//! for the shim, and reads never see a spurious EOF before the shim opened its end. The end of
//! output is therefore not an EOF but an explicit [`ProcessIo::finish`], called after the task's
//! `Delete` returned — the shim waits for its own copy to complete before answering `Delete`, so
//! by then everything the process wrote is in the fifo, and the copier drains it without
//! blocking.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::AsyncReadExt as _;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::logs::{LogWriter, Stream, now_nanos};
use crate::tasks::Stdio3;

/// A chunk of output: (frame stream byte, data).
pub type Chunk = (u8, Bytes);

/// The attached clients of a process's output.
#[derive(Debug, Default)]
pub struct Attachers {
    list: Mutex<Vec<mpsc::Sender<Chunk>>>,
}

impl Attachers {
    /// Registers a client; its receiver ends when the process's output ends.
    pub fn attach(&self) -> mpsc::Receiver<Chunk> {
        let (tx, rx) = mpsc::channel(64);
        self.list.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        rx
    }

    async fn send(&self, chunk: Chunk) {
        let senders: Vec<mpsc::Sender<Chunk>> =
            self.list.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut gone = false;
        for s in senders {
            // Back-pressure like docker: a slow client slows the copy.
            if s.send(chunk.clone()).await.is_err() {
                gone = true;
            }
        }
        if gone {
            self.list
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|s| !s.is_closed());
        }
    }

    /// Ends every attached client's output.
    pub fn close_all(&self) {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The stdio of one process (the init or an exec).
#[derive(Debug)]
pub struct ProcessIo {
    /// The paths handed to the shim.
    pub paths: Stdio3,
    /// Where output goes besides the log.
    pub attachers: Arc<Attachers>,
    stdin: tokio::sync::Mutex<Option<pipe::Sender>>,
    stop: watch::Sender<bool>,
    copiers: Mutex<Vec<JoinHandle<()>>>,
}

fn mkfifo(path: &Path) -> io::Result<()> {
    match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl ProcessIo {
    /// Creates the fifos `<dir>/<prefix>-stdin|stdout|stderr` (stdin only with `open_stdin`,
    /// stderr only without a terminal) and starts the copiers. Must run inside the tokio
    /// runtime.
    pub fn open(
        dir: &Path,
        prefix: &str,
        open_stdin: bool,
        terminal: bool,
        log: Option<PathBuf>,
        attachers: Arc<Attachers>,
    ) -> io::Result<Self> {
        let fifo = |name: &str| dir.join(format!("{prefix}-{name}"));
        let mut paths = Stdio3 {
            terminal,
            ..Stdio3::default()
        };
        let mut stdin = None;
        if open_stdin {
            let p = fifo("stdin");
            mkfifo(&p)?;
            stdin = Some(pipe::OpenOptions::new().read_write(true).open_sender(&p)?);
            paths.stdin = p.display().to_string();
        }
        let (stop, stop_rx) = watch::channel(false);
        let log = match log {
            Some(p) => Some(Arc::new(Mutex::new(LogWriter::open(&p)?))),
            None => None,
        };
        let mut copiers = Vec::new();
        let mut streams = vec![(Stream::Stdout, fifo("stdout"))];
        if !terminal {
            streams.push((Stream::Stderr, fifo("stderr")));
        }
        for (stream, p) in streams {
            mkfifo(&p)?;
            let rx = pipe::OpenOptions::new()
                .read_write(true)
                .open_receiver(&p)?;
            match stream {
                Stream::Stdout => paths.stdout = p.display().to_string(),
                Stream::Stderr => paths.stderr = p.display().to_string(),
            }
            copiers.push(tokio::spawn(copy(
                rx,
                stream,
                log.clone(),
                attachers.clone(),
                stop_rx.clone(),
            )));
        }
        Ok(Self {
            paths,
            attachers,
            stdin: tokio::sync::Mutex::new(stdin),
            stop,
            copiers: Mutex::new(copiers),
        })
    }

    /// Writes to the process's stdin; false once stdin is closed.
    pub async fn write_stdin(&self, data: &[u8]) -> bool {
        use tokio::io::AsyncWriteExt as _;
        let mut g = self.stdin.lock().await;
        match g.as_mut() {
            Some(s) => s.write_all(data).await.is_ok(),
            None => false,
        }
    }

    /// Closes our end of stdin (the shim sees EOF once it drained the fifo).
    pub async fn close_stdin(&self) {
        self.stdin.lock().await.take();
    }

    /// Whether the process has a stdin.
    pub async fn has_stdin(&self) -> bool {
        self.stdin.lock().await.is_some()
    }

    /// Drains what is left in the fifos, ends the copiers and every attached client. Call
    /// after the shim's `Delete` of the process returned.
    pub async fn finish(&self) {
        let _ = self.stop.send(true);
        let handles: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.copiers.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            let _ = h.await;
        }
        self.close_stdin().await;
        self.attachers.close_all();
    }

    /// Removes the fifos.
    pub fn remove_fifos(&self) {
        for p in [&self.paths.stdin, &self.paths.stdout, &self.paths.stderr] {
            if !p.is_empty() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Resolves when the flag turns true (or its sender is gone).
pub async fn wait_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn deliver(
    data: &[u8],
    stream: Stream,
    log: Option<&Arc<Mutex<LogWriter>>>,
    attachers: &Attachers,
) {
    if let Some(l) = log {
        let r = l
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(stream, data, now_nanos());
        if let Err(e) = r {
            tracing::warn!(error = %e, "writing the container log");
        }
    }
    attachers
        .send((stream.byte(), Bytes::copy_from_slice(data)))
        .await;
}

async fn copy(
    mut rx: pipe::Receiver,
    stream: Stream,
    log: Option<Arc<Mutex<LogWriter>>>,
    attachers: Arc<Attachers>,
    mut stop: watch::Receiver<bool>,
) {
    use std::os::fd::AsFd as _;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        tokio::select! {
            r = rx.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => deliver(&buf[..n], stream, log.as_ref(), &attachers).await,
            },
            () = wait_true(&mut stop) => {
                // The shim finished writing: take what is buffered with plain non-blocking
                // reads (tokio's cached readiness may not have seen the last write yet).
                while let Ok(n) = nix::unistd::read(rx.as_fd(), &mut buf) {
                    if n == 0 {
                        break;
                    }
                    deliver(&buf[..n], stream, log.as_ref(), &attachers).await;
                }
                break;
            }
        }
    }
    if let Some(l) = &log {
        let _ = l
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .flush_partial(now_nanos());
    }
}
