//! Task events, forwarded to containerd in order, with retries.
//!
//! Transport (`reference/containerd-shim-and-store.md` §1.11): a ttrpc call on
//! `TTRPC_ADDRESS` to `containerd.services.events.ttrpc.v1.Events/Forward` with an
//! `Envelope{timestamp, namespace, topic, event: Any}`, where the Any's type URL is the bare
//! proto name (`containerd.events.TaskExit`). Without `TTRPC_ADDRESS` (containerd before 1.6
//! did not set it) the shim execs `<publish-binary> --address <grpc> publish --topic T
//! --namespace NS` with the Any on stdin instead.
//!
//! The call is made by `Connection`, a minimal ttrpc client: one request frame, then frames
//! are read until the response with the same stream id, on a blocking unix socket with
//! timeouts. The `ttrpc` crate's sync client would add a writer and a reader thread to every
//! shim for this one sequential call. Frame (ttrpc `PROTOCOL.md`): a 10-byte header — payload
//! length (u32, big-endian), stream id (u32, odd for client streams), type (1 request,
//! 2 response), flags — then the protobuf `ttrpc.Request` / `ttrpc.Response`.
//!
//! One thread sends events in the order they were queued — callers queue under the process
//! table lock, so TaskCreate < TaskStart < TaskExit < TaskDelete and ExecAdded < ExecStarted <
//! exec's TaskExit hold by construction. A failed send is retried in place (reconnecting)
//! up to [`MAX_ATTEMPTS`] times with a growing pause, so order survives a containerd restart of
//! a few seconds; after that the event is dropped, as the Go shim does.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::ttrpc::proto::{
    KeyValue, MESSAGE_HEADER_LENGTH, MESSAGE_LENGTH_MAX, MESSAGE_TYPE_REQUEST,
    MESSAGE_TYPE_RESPONSE, Request, Response,
};

use crate::reaper::Reaper;

/// Sends per event before it is dropped.
pub const MAX_ATTEMPTS: u32 = 5;
/// The deadline of one Forward call.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// containerd's events service and the method the shim calls.
const EVENTS_SERVICE: &str = "containerd.services.events.ttrpc.v1.Events";
const FORWARD: &str = "Forward";
/// The ttrpc metadata key that carries the containerd namespace.
const NAMESPACE_KEY: &str = "containerd-namespace-ttrpc";

/// A task event message with its topic and proto name.
pub trait TaskEvent: Message {
    /// The topic (`/tasks/exit`).
    const TOPIC: &'static str;
    /// The proto full name, used as the Any's type URL.
    const TYPE_URL: &'static str;
}

macro_rules! task_event {
    ($t:ty, $topic:literal, $name:literal) => {
        impl TaskEvent for $t {
            const TOPIC: &'static str = $topic;
            const TYPE_URL: &'static str = $name;
        }
    };
}

task_event!(TaskCreate, "/tasks/create", "containerd.events.TaskCreate");
task_event!(TaskStart, "/tasks/start", "containerd.events.TaskStart");
task_event!(TaskExit, "/tasks/exit", "containerd.events.TaskExit");
task_event!(TaskDelete, "/tasks/delete", "containerd.events.TaskDelete");
task_event!(
    TaskExecAdded,
    "/tasks/exec-added",
    "containerd.events.TaskExecAdded"
);
task_event!(
    TaskExecStarted,
    "/tasks/exec-started",
    "containerd.events.TaskExecStarted"
);
task_event!(TaskPaused, "/tasks/paused", "containerd.events.TaskPaused");
task_event!(
    TaskResumed,
    "/tasks/resumed",
    "containerd.events.TaskResumed"
);
task_event!(TaskOOM, "/tasks/oom", "containerd.events.TaskOOM");

/// A protobuf timestamp.
pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    ts.nanos = i32::try_from(d.subsec_nanos()).unwrap_or(0);
    ts
}

/// A queued event.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) topic: &'static str,
    pub(crate) event: Any,
    pub(crate) at: SystemTime,
}

/// Where events go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The containerd namespace.
    pub namespace: String,
    /// `TTRPC_ADDRESS` (a path or `unix://` address), or empty.
    pub ttrpc_address: String,
    /// `-publish-binary`, for the exec fallback.
    pub publish_binary: String,
    /// `-address` (containerd's gRPC socket), for the exec fallback.
    pub grpc_address: String,
}

/// The sending side of the event queue.
#[derive(Debug, Clone)]
pub struct Publisher {
    tx: Sender<Queued>,
}

impl Publisher {
    /// Starts the sender thread.
    pub fn start(target: Target, reaper: Arc<Reaper>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Queued>();
        std::thread::Builder::new()
            .name("events".into())
            .stack_size(crate::serve::THREAD_STACK)
            .spawn(move || {
                let mut sender = EventSender {
                    target,
                    reaper,
                    connection: None,
                };
                for queued in rx {
                    sender.send_with_retries(&queued);
                }
            })?;
        Ok(Self { tx })
    }

    /// A publisher whose events land on the returned channel (unit tests).
    #[cfg(test)]
    pub(crate) fn capture() -> (Self, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel();
        (Self { tx }, rx)
    }

    /// Queues `event`.
    pub fn publish<E: TaskEvent>(&self, event: &E) {
        let mut any = Any::new();
        any.type_url = E::TYPE_URL.to_string();
        any.value = event.write_to_bytes().unwrap_or_default();
        let _ = self.tx.send(Queued {
            topic: E::TOPIC,
            event: any,
            at: SystemTime::now(),
        });
    }
}

#[derive(Debug)]
struct EventSender {
    target: Target,
    reaper: Arc<Reaper>,
    connection: Option<Connection>,
}

impl EventSender {
    fn send_with_retries(&mut self, queued: &Queued) {
        for attempt in 1..=MAX_ATTEMPTS {
            match self.send(queued) {
                Ok(()) => return,
                Err(e) => {
                    self.connection = None;
                    if attempt == MAX_ATTEMPTS {
                        tracing::warn!(
                            topic = queued.topic,
                            "dropping event after {MAX_ATTEMPTS} attempts: {e}"
                        );
                        return;
                    }
                    tracing::debug!(topic = queued.topic, attempt, "event not sent: {e}");
                    std::thread::sleep(Duration::from_millis(500) * attempt);
                }
            }
        }
    }

    fn send(&mut self, queued: &Queued) -> Result<(), String> {
        if self.target.ttrpc_address.is_empty() {
            return self.publish_exec(queued);
        }
        let mut envelope = Envelope::new();
        envelope.timestamp = MessageField::some(timestamp(queued.at));
        envelope.namespace = self.target.namespace.clone();
        envelope.topic = queued.topic.to_string();
        envelope.event = MessageField::some(queued.event.clone());
        let mut request = ForwardRequest::new();
        request.envelope = MessageField::some(envelope);
        let payload = request.write_to_bytes().map_err(|e| e.to_string())?;
        let connection = match &mut self.connection {
            Some(c) => c,
            None => {
                let path = self
                    .target
                    .ttrpc_address
                    .strip_prefix("unix://")
                    .unwrap_or(&self.target.ttrpc_address);
                let c =
                    Connection::connect(path).map_err(|e| format!("connecting to {path}: {e}"))?;
                self.connection.insert(c)
            }
        };
        connection
            .call(EVENTS_SERVICE, FORWARD, payload, &self.target.namespace)
            .map(drop)
            .map_err(|e| format!("Forward: {e}"))
    }

    /// containerd's `publish` subcommand reads the event Any from stdin.
    fn publish_exec(&self, queued: &Queued) -> Result<(), String> {
        use std::io::Write as _;
        let data = queued.event.write_to_bytes().map_err(|e| e.to_string())?;
        let mut command = Command::new(&self.target.publish_binary);
        command
            .args(["--address", &self.target.grpc_address, "publish", "--topic"])
            .arg(queued.topic)
            .args(["--namespace", &self.target.namespace])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let (mut child, rx) = self
            .reaper
            .spawn(&mut command)
            .map_err(|e| format!("running {}: {e}", self.target.publish_binary))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(&data);
        }
        match rx.recv_timeout(FORWARD_TIMEOUT) {
            Ok(exit) if exit.status == 0 => Ok(()),
            Ok(exit) => Err(format!("publish exited with {}", exit.status)),
            Err(_) => {
                let _ = child.kill();
                Err("publish timed out".into())
            }
        }
    }
}

/// A minimal blocking ttrpc client connection (see the module docs).
#[derive(Debug)]
pub(crate) struct Connection {
    stream: UnixStream,
    next_stream_id: u32,
}

impl Connection {
    /// Connects to the unix socket at `path`.
    pub(crate) fn connect(path: &str) -> std::io::Result<Self> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(FORWARD_TIMEOUT))?;
        stream.set_write_timeout(Some(FORWARD_TIMEOUT))?;
        Ok(Self {
            stream,
            next_stream_id: 1,
        })
    }

    /// One unary call in `namespace`: the response payload, or the error status as text.
    pub(crate) fn call(
        &mut self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        namespace: &str,
    ) -> Result<Vec<u8>, String> {
        let mut request = Request::new();
        request.service = service.to_string();
        request.method = method.to_string();
        request.payload = payload;
        request.timeout_nano = i64::try_from(FORWARD_TIMEOUT.as_nanos()).unwrap_or(i64::MAX);
        let mut kv = KeyValue::new();
        kv.key = NAMESPACE_KEY.to_string();
        kv.value = namespace.to_string();
        request.metadata.push(kv);
        let body = request.write_to_bytes().map_err(|e| e.to_string())?;
        let id = self.next_stream_id;
        self.next_stream_id = self.next_stream_id.wrapping_add(2);
        let length = u32::try_from(body.len()).map_err(|_| "request too large".to_string())?;
        let mut frame = Vec::with_capacity(MESSAGE_HEADER_LENGTH + body.len());
        frame.extend_from_slice(&length.to_be_bytes());
        frame.extend_from_slice(&id.to_be_bytes());
        frame.extend_from_slice(&[MESSAGE_TYPE_REQUEST, 0]);
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .map_err(|e| format!("sending: {e}"))?;
        loop {
            let mut header = [0u8; MESSAGE_HEADER_LENGTH];
            self.stream
                .read_exact(&mut header)
                .map_err(|e| format!("reading the response: {e}"))?;
            let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
            let stream_id = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            let length = usize::try_from(length).unwrap_or(usize::MAX);
            if length > MESSAGE_LENGTH_MAX {
                return Err(format!("response of {length} bytes"));
            }
            let mut body = vec![0u8; length];
            self.stream
                .read_exact(&mut body)
                .map_err(|e| format!("reading the response: {e}"))?;
            if stream_id != id || header[8] != MESSAGE_TYPE_RESPONSE {
                continue;
            }
            let response = Response::parse_from_bytes(&body).map_err(|e| e.to_string())?;
            if let Some(status) = response.status.as_ref() {
                if status.code.value() != 0 {
                    return Err(format!(
                        "{:?}: {}",
                        status.code.enum_value_or_default(),
                        status.message
                    ));
                }
            }
            return Ok(response.payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::ttrpc::proto::{Code, Status};
    use std::os::unix::net::UnixListener;

    /// Serves one connection: answers each request with `answer(request)`.
    fn fake_server(
        answers: Vec<Response>,
    ) -> (std::path::PathBuf, std::thread::JoinHandle<Vec<Request>>) {
        let path = std::env::temp_dir().join(format!(
            "skiff-shim-events-{}-{}.sock",
            std::process::id(),
            answers.len()
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind");
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut seen = Vec::new();
            for answer in answers {
                let mut header = [0u8; MESSAGE_HEADER_LENGTH];
                stream.read_exact(&mut header).expect("header");
                let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
                assert_eq!(header[8], MESSAGE_TYPE_REQUEST);
                let mut body = vec![0u8; usize::try_from(length).expect("len")];
                stream.read_exact(&mut body).expect("body");
                seen.push(Request::parse_from_bytes(&body).expect("a ttrpc Request"));
                // An unrelated frame first: the client skips it.
                let noise = Response::new().write_to_bytes().expect("encode");
                let mut frame = Vec::new();
                frame.extend_from_slice(&u32::try_from(noise.len()).expect("len").to_be_bytes());
                frame.extend_from_slice(&999u32.to_be_bytes());
                frame.extend_from_slice(&[MESSAGE_TYPE_RESPONSE, 0]);
                frame.extend_from_slice(&noise);
                let reply = answer.write_to_bytes().expect("encode");
                frame.extend_from_slice(&u32::try_from(reply.len()).expect("len").to_be_bytes());
                frame.extend_from_slice(&header[4..8]);
                frame.extend_from_slice(&[MESSAGE_TYPE_RESPONSE, 0]);
                frame.extend_from_slice(&reply);
                stream.write_all(&frame).expect("reply");
            }
            seen
        });
        (path, handle)
    }

    #[test]
    fn the_frame_client_speaks_ttrpc() {
        let mut ok = Response::new();
        ok.payload = b"done".to_vec();
        let mut failed = Response::new();
        let mut status = Status::new();
        status.code = Code::NOT_FOUND.into();
        status.message = "no such topic".into();
        failed.status = MessageField::some(status);
        let (path, server) = fake_server(vec![ok, failed]);
        let mut c = Connection::connect(path.to_str().expect("utf-8")).expect("connect");
        assert_eq!(
            c.call(EVENTS_SERVICE, FORWARD, b"abc".to_vec(), "ns1"),
            Ok(b"done".to_vec())
        );
        let err = c
            .call(EVENTS_SERVICE, FORWARD, Vec::new(), "ns1")
            .expect_err("an error status");
        assert!(
            err.contains("NOT_FOUND") && err.contains("no such topic"),
            "{err}"
        );
        let seen = server.join().expect("server");
        assert_eq!(seen[0].service, EVENTS_SERVICE);
        assert_eq!(seen[0].method, FORWARD);
        assert_eq!(seen[0].payload, b"abc");
        assert_eq!(seen[0].metadata[0].key, NAMESPACE_KEY);
        assert_eq!(seen[0].metadata[0].value, "ns1");
        let _ = std::fs::remove_file(&path);
    }
}
