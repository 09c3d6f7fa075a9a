//! `run` in the foreground with `process.terminal: true` and no console socket: the runtime
//! itself receives the pty master and relays the caller's terminal to it.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skiff_tests::host::wait_until;
use skiff_tests::{Container, require_root, setup, unique_id};

#[test]
fn foreground_run_relays_the_terminal_and_exit_code() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.set_terminal(true).set_args(&["sh"]);
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let id = unique_id("tty");
    let _guard = Container::guard(&rt, &id);
    let slave = std::fs::File::from(pty.slave);
    let mut child = Command::new(rt.bin())
        .args(["--root"])
        .arg(rt.root())
        .args(["run", "--bundle", bundle.path_str(), &id])
        .stdin(Stdio::from(slave.try_clone().expect("dup slave")))
        .stdout(Stdio::from(slave.try_clone().expect("dup slave")))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("spawn the runtime");
    let mut master = std::fs::File::from(pty.master);
    // Non-blocking reads so the test's loops stay bounded.
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .expect("nonblock");
    let mut seen = String::new();
    let read_until = |master: &mut std::fs::File, needle: &str, seen: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while !seen.contains(needle) {
            assert!(Instant::now() < deadline, "no {needle:?} in {seen:?}");
            match master.read(&mut buf) {
                Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    };
    read_until(&mut master, "# ", &mut seen);
    master
        .write_all(b"tty; echo marker-$((40+2)); exit 7\r")
        .expect("type into the terminal");
    read_until(&mut master, "marker-42", &mut seen);
    assert!(
        seen.contains("/dev/pts/0"),
        "the shell's stdin is not the container's pty: {seen:?}"
    );
    let mut status = None;
    wait_until(Duration::from_secs(20), "the runtime to exit", || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(7), "{seen:?}");
    assert!(
        rt.state_entries(&id).is_empty(),
        "run without --keep left state behind"
    );
}
