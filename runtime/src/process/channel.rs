//! The runtime ⇄ init channel: a `SOCK_SEQPACKET` socketpair (message boundaries kept, EOF when
//! the other side dies) carrying one-byte tags with an optional UTF-8 payload.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};

/// One message between the runtime and the init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Runtime → init: the uid/gid maps of the new user namespace are written.
    MappingsWritten,
    /// Init → runtime: namespaces exist, mounts are done; run prestart and createRuntime hooks.
    RunHooks,
    /// Runtime → init: the hooks succeeded.
    HooksDone,
    /// Init → runtime: set-up finished, about to wait for `start`.
    Ready,
    /// Runtime → init: the state is on disk; drop the parent-death signal and detach.
    Detach,
    /// Runtime → init: the init is in the container's cgroup; it may unshare its cgroup
    /// namespace now.
    CgroupPlaced,
    /// Intermediate → runtime: the init's host pid (only when an intermediate process joins a
    /// user namespace before the init is cloned).
    InitPid(i32),
    /// Init → runtime: set-up failed, with the error chain.
    Failed(String),
    /// Init → runtime: a createContainer or startContainer hook failed, with the error chain
    /// (the runtime then owes the poststop hooks).
    HookFailed(String),
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        match self {
            Message::MappingsWritten => vec![1],
            Message::RunHooks => vec![2],
            Message::HooksDone => vec![3],
            Message::Ready => vec![4],
            Message::Detach => vec![5],
            Message::CgroupPlaced => vec![8],
            Message::InitPid(pid) => {
                let mut v = vec![9];
                v.extend_from_slice(&pid.to_le_bytes());
                v
            }
            Message::Failed(msg) => {
                let mut v = vec![6];
                v.extend_from_slice(msg.as_bytes());
                v
            }
            Message::HookFailed(msg) => {
                let mut v = vec![7];
                v.extend_from_slice(msg.as_bytes());
                v
            }
        }
    }

    fn decode(buf: &[u8]) -> std::io::Result<Message> {
        Ok(match buf.split_first() {
            Some((1, [])) => Message::MappingsWritten,
            Some((2, [])) => Message::RunHooks,
            Some((3, [])) => Message::HooksDone,
            Some((4, [])) => Message::Ready,
            Some((5, [])) => Message::Detach,
            Some((8, [])) => Message::CgroupPlaced,
            Some((9, &[a, b, c, d])) => Message::InitPid(i32::from_le_bytes([a, b, c, d])),
            Some((6, msg)) => Message::Failed(String::from_utf8_lossy(msg).into_owned()),
            Some((7, msg)) => Message::HookFailed(String::from_utf8_lossy(msg).into_owned()),
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("unexpected message {buf:?} on the init channel"),
                ));
            }
        })
    }
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel(OwnedFd);

impl Channel {
    /// A connected pair, both ends close-on-exec.
    pub fn pair() -> std::io::Result<(Channel, Channel)> {
        let (a, b) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Channel(a), Channel(b)))
    }

    pub fn send(&self, msg: &Message) -> std::io::Result<()> {
        socket::send(self.0.as_raw_fd(), &msg.encode(), MsgFlags::MSG_NOSIGNAL)?;
        Ok(())
    }

    /// Shut the connection down in both directions: the peer sees EOF even if a copy of this
    /// descriptor lives on in another process.
    pub fn shutdown(&self) -> std::io::Result<()> {
        socket::shutdown(self.0.as_raw_fd(), socket::Shutdown::Both)?;
        Ok(())
    }

    /// A second descriptor for the same end.
    pub fn try_clone(&self) -> std::io::Result<Channel> {
        Ok(Channel(self.0.try_clone()?))
    }

    /// The next message, or `None` when the other end is closed.
    pub fn recv(&self) -> std::io::Result<Option<Message>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match socket::recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Ok(None),
                Ok(n) => return Message::decode(&buf[..n]).map(Some),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_eof() {
        let (a, b) = Channel::pair().expect("pair");
        for m in [
            Message::MappingsWritten,
            Message::RunHooks,
            Message::HooksDone,
            Message::Ready,
            Message::Detach,
            Message::Failed("mount /proc: permission denied".into()),
            Message::HookFailed("createContainer hook #0 failed".into()),
        ] {
            a.send(&m).expect("send");
            assert_eq!(b.recv().expect("recv"), Some(m));
        }
        drop(a);
        assert_eq!(b.recv().expect("recv"), None);
    }
}
