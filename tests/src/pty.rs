//! Driving an interactive client (`ctr run -t`, `docker run -it`, `ctr task exec -t`) through a
//! pseudo-terminal, as a person at a terminal would.
//!
//! [`PtySession::spawn`] opens a pty pair (`openpty(3)`), gives the slave to the client as its
//! stdin, stdout and stderr (the client checks `isatty(0)` and puts the terminal in raw mode),
//! and keeps the master. A thread copies everything the client writes into a buffer that
//! [`PtySession::wait_for`] searches with a deadline; [`PtySession::send`] types into the
//! master. The slave is not made the client's controlling terminal: neither ctr nor the docker
//! CLI needs one (they only use `tcsetattr`/`TIOCGWINSZ` on the fd), and doing so would take a
//! `pre_exec` hook (`setsid` + `TIOCSCTTY`), which this crate's `forbid(unsafe_code)` rules out.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::pty::{Winsize, openpty};

/// A client process running on a pty whose master this side holds.
#[derive(Debug)]
pub struct PtySession {
    describe: String,
    child: Option<Child>,
    master: File,
    output: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl PtySession {
    /// Starts `command` with a fresh pty (80x24) as its stdin, stdout and stderr.
    ///
    /// # Panics
    /// If the pty cannot be opened or the command cannot be started.
    pub fn spawn(mut command: Command, describe: &str) -> Self {
        let winsize = Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(&winsize, None).expect("openpty");
        let slave = |what: &str| {
            Stdio::from(
                pty.slave
                    .try_clone()
                    .unwrap_or_else(|e| panic!("dup of the pty slave for {what}: {e}")),
            )
        };
        command
            .stdin(slave("stdin"))
            .stdout(slave("stdout"))
            .stderr(slave("stderr"));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning `{describe}` on a pty: {e}"));
        // Our copy of the slave must go, or reading the master never sees the end (EIO) once the
        // client exits. `command` holds the other copies until it is dropped here.
        drop(command);
        drop(pty.slave);
        let master = File::from(pty.master);
        let mut reader_end = master.try_clone().expect("dup of the pty master");
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO when the last slave fd closes (Linux pty semantics), or on EOF.
            while let Ok(n) = reader_end.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut out) = sink.lock() {
                    out.extend_from_slice(&buf[..n]);
                }
            }
        });
        Self {
            describe: describe.to_string(),
            child: Some(child),
            master,
            output,
            reader: Some(reader),
        }
    }

    /// Everything the client wrote to the terminal so far (lossy UTF-8).
    pub fn output(&self) -> String {
        let bytes = self.output.lock().map(|o| o.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Types `text` into the terminal.
    ///
    /// # Panics
    /// If the write fails.
    pub fn send(&mut self, text: &str) {
        self.master
            .write_all(text.as_bytes())
            .and_then(|()| self.master.flush())
            .unwrap_or_else(|e| panic!("typing into the pty of `{}`: {e}", self.describe));
    }

    /// Waits until the terminal output contains `needle`.
    ///
    /// # Panics
    /// After `timeout`, with everything the terminal showed.
    #[track_caller]
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output().contains(needle) {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                // Give the reader a moment to drain what the client wrote last.
                thread::sleep(Duration::from_millis(100));
                if self.output().contains(needle) {
                    return;
                }
                panic!(
                    "`{}` exited ({}) before the terminal showed {needle:?}; it showed:\n{}",
                    self.describe,
                    Self::describe_status(status),
                    self.output()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "`{}`: the terminal did not show {needle:?} within {timeout:?}; it showed:\n{}",
                    self.describe,
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the client to exit and for its terminal output to be read to the end.
    ///
    /// # Panics
    /// After `timeout` (the client is killed first), with the terminal output.
    #[track_caller]
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("`{}` was already waited for", self.describe));
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "`{}` did not exit within {timeout:?}; killed it. Terminal:\n{}",
                        self.describe,
                        self.output()
                    );
                }
                Err(e) => panic!("waiting for `{}`: {e}", self.describe),
            }
        };
        // The reader ends at EIO once every slave fd is closed; a grandchild that kept the slave
        // open would keep it going, so only wait a bounded time for it.
        let reader_deadline = Instant::now() + Duration::from_secs(5);
        while self.reader.as_ref().is_some_and(|r| !r.is_finished())
            && Instant::now() < reader_deadline
        {
            thread::sleep(Duration::from_millis(10));
        }
        if self.reader.as_ref().is_some_and(JoinHandle::is_finished) {
            if let Some(reader) = self.reader.take() {
                let _ = reader.join();
            }
        }
        status
    }

    /// Drive an interactive busybox shell started by `command` (`ctr run -t`, `docker exec -it`…):
    /// wait for its prompt, type a line whose output differs from its echo, check that the
    /// shell's terminal is a pty, exit with `code` and check that the client exits with it too.
    /// Returns everything the session printed.
    #[track_caller]
    pub fn check_interactive_shell(
        command: Command,
        describe: &str,
        code: i32,
        timeout: Duration,
    ) -> String {
        let mut session = PtySession::spawn(command, describe);
        session.wait_for("# ", timeout);
        // The quotes make the typed line differ from its output.
        session.send("tty; echo inter''active-$((40+2))\r");
        session.wait_for("interactive-42", timeout);
        session.send(&format!("exit {code}\r"));
        let status = session.wait(timeout);
        let output = session.output();
        assert!(
            output.contains("/dev/pts/"),
            "`tty` is not a pty in {describe}:\n{output}"
        );
        assert_eq!(
            status.code(),
            Some(code),
            "{describe} ended with {}:\n{output}",
            PtySession::describe_status(status)
        );
        output
    }

    /// The exit code of a finished client, for messages: the code or `signal N`.
    pub fn describe_status(status: ExitStatus) -> String {
        match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "unknown status".to_string(),
        }
    }
}

impl Drop for PtySession {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A reader still blocked on the master (a leftover holder of the slave) is detached; it
        // ends when that holder goes.
    }
}
