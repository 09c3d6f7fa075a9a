//! A process's stdio: the client's fifos on one side, pipes or a pty master on the other.
//!
//! The client (ctr, containerd's cio) makes fifos and passes their paths in Create/Exec
//! (`[CD]/pkg/cio/io_unix.go`). Without a terminal the shim makes one pipe per stream, hands the
//! process ends to the runtime CLI (the container process inherits them) and copies between the
//! fifos and its own ends. With a terminal the runtime sends the pty master over a console
//! socket the shim listens on (one `SCM_RIGHTS` fd, go-runc `socket.go`), and the shim copies
//! stdin fifo → master → stdout fifo.
//!
//! Fifo opening follows the Go shim (`[CD]/cmd/containerd-shim-runc-v2/process/io.go`):
//! stdout/stderr are opened read-write so the open never blocks and writes never fail with
//! EPIPE while no client is attached; stdin is opened for reading in its copy thread, which
//! blocks until the client opens its end. `file://` paths are appended to; `binary://` loggers
//! are not supported.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;

use crate::error::{Error, Result};
use crate::runtime::ChildStdio;

/// How long the shim waits for the pty master after the runtime CLI succeeded.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The copy buffer (the Go shim uses 32 KiB too).
const COPY_BUFFER: usize = 32 * 1024;

/// The stdio a client asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPaths {
    /// The stdin fifo, or empty.
    pub stdin: String,
    /// The stdout fifo, or empty.
    pub stdout: String,
    /// The stderr fifo, or empty.
    pub stderr: String,
    /// Whether the process gets a pty.
    pub terminal: bool,
}

/// The shim's side of a process's stdio, kept for CloseIO, ResizePty and Delete.
#[derive(Debug, Clone, Default)]
pub struct ProcessIo {
    stdin: Arc<Mutex<Option<File>>>,
    stdin_path: String,
    stdin_opened: Arc<AtomicBool>,
    console: Option<Arc<File>>,
    outputs: Arc<Outputs>,
}

/// The output copies of a process that are still running. Delete waits for them (bounded,
/// the Go shim's `waitTimeout(&p.wg, 2s)`), so once Delete answers the client's fifos hold
/// every byte the process wrote: a client that drains its fifos after Delete loses nothing.
#[derive(Debug, Default)]
struct Outputs {
    running: Mutex<usize>,
    done: Condvar,
}

/// One running output copy; counted down when its thread ends.
#[derive(Debug)]
struct OutputGuard(Arc<Outputs>);

impl Outputs {
    fn start(self: &Arc<Self>) -> OutputGuard {
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        OutputGuard(self.clone())
    }

    /// Whether every copy ended within `timeout`.
    fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        while *running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            running = self
                .done
                .wait_timeout(running, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl Drop for OutputGuard {
    fn drop(&mut self) {
        let mut running = self
            .0
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *running = running.saturating_sub(1);
        self.0.done.notify_all();
    }
}

/// Stdio prepared before the runtime CLI runs.
#[derive(Debug)]
pub struct Prepared {
    /// What the CLI passes to the process.
    pub child: ChildStdio,
    /// The console socket when a terminal was asked for.
    pub console: Option<ConsoleSocket>,
    io: ProcessIo,
    paths: StdioPaths,
}

impl Prepared {
    /// Sets up the stdio for `paths`. Without a terminal the copies start now.
    pub fn new(paths: &StdioPaths) -> Result<Self> {
        if paths.terminal {
            return Ok(Self {
                child: ChildStdio::null(),
                console: Some(ConsoleSocket::new()?),
                io: ProcessIo::default(),
                paths: paths.clone(),
            });
        }
        let io = ProcessIo {
            stdin_path: paths.stdin.clone(),
            ..ProcessIo::default()
        };
        let stdin = if paths.stdin.is_empty() {
            Stdio::null()
        } else {
            let (r, w) = pipe()?;
            *io.stdin.lock().unwrap_or_else(PoisonError::into_inner) = Some(File::from(w));
            spawn_stdin_copy(
                paths.stdin.clone(),
                io.stdin.clone(),
                io.stdin_opened.clone(),
            )?;
            Stdio::from(r)
        };
        let stdout = output_stream(&paths.stdout, &io.outputs)?;
        let stderr = output_stream(&paths.stderr, &io.outputs)?;
        Ok(Self {
            child: ChildStdio {
                stdin,
                stdout,
                stderr,
            },
            console: None,
            io,
            paths: paths.clone(),
        })
    }

    /// After the CLI succeeded: receives the pty master (terminal) and starts its copies.
    pub fn finish(mut self) -> Result<ProcessIo> {
        let Some(console) = self.console.take() else {
            return Ok(self.io);
        };
        let master = console.receive()?;
        let master = Arc::new(File::from(master));
        let reader = master
            .try_clone()
            .map_err(|e| Error::io("duplicating the pty master", e))?;
        let writer = master
            .try_clone()
            .map_err(|e| Error::io("duplicating the pty master", e))?;
        let io = ProcessIo {
            stdin: Arc::new(Mutex::new(Some(writer))),
            stdin_path: self.paths.stdin.clone(),
            stdin_opened: Arc::new(AtomicBool::new(false)),
            console: Some(master),
            outputs: Arc::default(),
        };
        if self.paths.stdin.is_empty() {
            io.stdin_opened.store(true, Ordering::Release);
        } else {
            spawn_stdin_copy(
                self.paths.stdin.clone(),
                io.stdin.clone(),
                io.stdin_opened.clone(),
            )?;
        }
        if !self.paths.stdout.is_empty() {
            let out = open_output(&self.paths.stdout)?;
            spawn_copy("pty-out", reader, out, io.outputs.start())?;
        }
        Ok(io)
    }
}

impl ProcessIo {
    /// CloseIO: closes the process's stdin (pipe write end, or stops feeding the pty).
    pub fn close_stdin(&self) {
        self.stdin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.unblock_stdin_open();
    }

    /// ResizePty.
    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let Some(console) = &self.console else {
            return Err(Error::FailedPrecondition(
                "the process has no terminal".into(),
            ));
        };
        let winsize = rustix::termios::Winsize {
            ws_row: u16::try_from(height).unwrap_or(u16::MAX),
            ws_col: u16::try_from(width).unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(console.as_ref(), winsize)
            .map_err(|e| Error::io("resizing the pty", e.into()))
    }

    /// Waits (at most `timeout`) until the output copies have ended, i.e. the process and
    /// everything that inherited its stdout/stderr are gone and the client's fifos have every
    /// byte; whether they did.
    pub fn wait_output(&self, timeout: Duration) -> bool {
        self.outputs.wait(timeout)
    }

    /// Releases everything when the process is deleted: stdin, and a stdin copy thread still
    /// blocked opening its fifo.
    pub fn release(&self) {
        self.close_stdin();
    }

    /// A stdin copy thread blocks in `open(O_RDONLY)` until a writer appears; opening the
    /// fifo for writing ourselves (non-blocking: a reader is waiting, fifo(7)) lets it go.
    fn unblock_stdin_open(&self) {
        if self.stdin_path.is_empty() || self.stdin_opened.load(Ordering::Acquire) {
            return;
        }
        let _ = OpenOptions::new()
            .write(true)
            .custom_flags(OFlag::O_NONBLOCK.bits())
            .open(&self.stdin_path);
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::io("creating a pipe", e.into()))
}

/// The process end of an output stream, with its copy thread started.
fn output_stream(path: &str, outputs: &Arc<Outputs>) -> Result<Stdio> {
    if path.is_empty() {
        return Ok(Stdio::null());
    }
    let out = open_output(path)?;
    let (r, w) = pipe()?;
    spawn_copy("stdio-out", File::from(r), out, outputs.start())?;
    Ok(Stdio::from(w))
}

/// Opens a client output: a fifo read-write (never blocks, never EPIPE), or a `file://` path
/// for appending.
fn open_output(path: &str) -> Result<File> {
    if let Some(file) = path.strip_prefix("file://") {
        return OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| Error::io(format!("opening {file}"), e));
    }
    let path = path.strip_prefix("fifo://").unwrap_or(path);
    if path.contains("://") {
        return Err(Error::InvalidArgument(format!(
            "unsupported stdio URI {path:?} (only fifos and file:// are supported)"
        )));
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {path}"), e))
}

fn spawn_copy(
    name: &str,
    mut from: impl Read + Send + 'static,
    mut to: File,
    running: OutputGuard,
) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(crate::serve::THREAD_STACK)
        .spawn(move || {
            let _running = running;
            let mut buf = vec![0u8; COPY_BUFFER];
            loop {
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // EIO from a pty master once the last slave fd closed.
                    Err(_) => break,
                }
            }
        })
        .map(drop)
        .map_err(|e| Error::io("starting a stdio copy thread", e))
}

fn spawn_stdin_copy(
    path: String,
    target: Arc<Mutex<Option<File>>>,
    opened: Arc<AtomicBool>,
) -> Result<()> {
    std::thread::Builder::new()
        .name("stdio-in".into())
        .stack_size(crate::serve::THREAD_STACK)
        .spawn(move || {
            let fifo = File::open(path.strip_prefix("fifo://").unwrap_or(&path));
            opened.store(true, Ordering::Release);
            let Ok(mut fifo) = fifo else {
                target.lock().unwrap_or_else(PoisonError::into_inner).take();
                return;
            };
            let mut buf = vec![0u8; COPY_BUFFER];
            loop {
                let n = match fifo.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let mut guard = target.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(out) = guard.as_mut() else { return };
                if out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            // EOF from the client: the process sees EOF too.
            target.lock().unwrap_or_else(PoisonError::into_inner).take();
        })
        .map(drop)
        .map_err(|e| Error::io("starting the stdin copy thread", e))
}

/// A unix socket the runtime connects to with `--console-socket` to send the pty master.
#[derive(Debug)]
pub struct ConsoleSocket {
    path: PathBuf,
    received: Receiver<std::io::Result<OwnedFd>>,
}

static CONSOLE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ConsoleSocket {
    /// Listens on a fresh socket in the temp dir (bundle paths can exceed the 108-byte
    /// `sun_path` limit, unix(7)) and accepts one connection in a thread.
    pub fn new() -> Result<Self> {
        let n = CONSOLE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("skiff-shim-{}-{n}-pty.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| Error::io(format!("binding console socket {}", path.display()), e))?;
        let (tx, received) = mpsc::channel();
        std::thread::Builder::new()
            .name("console".into())
            .stack_size(crate::serve::THREAD_STACK)
            .spawn(move || {
                let _ = tx.send(accept_master(&listener));
            })
            .map_err(|e| Error::io("starting the console socket thread", e))?;
        Ok(Self { path, received })
    }

    /// The socket path for `--console-socket`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master the runtime sent.
    fn receive(&self) -> Result<OwnedFd> {
        match self.received.recv_timeout(CONSOLE_TIMEOUT) {
            Ok(Ok(fd)) => Ok(fd),
            Ok(Err(e)) => Err(Error::io("receiving the pty master", e)),
            Err(_) => Err(Error::io(
                "receiving the pty master",
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the runtime sent no pty master",
                ),
            )),
        }
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        // If the runtime never connected, connect ourselves so the accept thread ends.
        if self.received.try_recv().is_err() {
            let _ = UnixStream::connect(&self.path);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_master(listener: &UnixListener) -> std::io::Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::mem::MaybeUninit;
    let (stream, _) = listener.accept()?;
    let mut name = [0u8; 4096];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    rustix::net::recvmsg(&stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
    let mut master = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                master.get_or_insert(fd);
            }
        }
    }
    master.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the console socket message carried no fd",
        )
    })
}
