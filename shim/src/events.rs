//! Task events, forwarded to containerd in order, with retries.
//!
//! Transport (`reference/containerd-shim-and-store.md` §1.11): a ttrpc client on
//! `TTRPC_ADDRESS` calling `containerd.services.events.ttrpc.v1.Events/Forward` with an
//! `Envelope{timestamp, namespace, topic, event: Any}`, where the Any's type URL is the bare
//! proto name (`containerd.events.TaskExit`). Without `TTRPC_ADDRESS` (containerd before 1.6
//! did not set it) the shim execs `<publish-binary> --address <grpc> publish --topic T
//! --namespace NS` with the Any on stdin instead.
//!
//! One thread sends events in the order they were queued — callers queue under the process
//! table lock, so TaskCreate < TaskStart < TaskExit < TaskDelete and ExecAdded < ExecStarted <
//! exec's TaskExit hold by construction. A failed send is retried in place (reconnecting)
//! up to [`MAX_ATTEMPTS`] times with a growing pause, so order survives a containerd restart of
//! a few seconds; after that the event is dropped, as the Go shim does.

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
use containerd_shim_protos::{EventsClient, ttrpc};

use crate::reaper::Reaper;

/// Sends per event before it is dropped.
pub const MAX_ATTEMPTS: u32 = 5;
/// The deadline of one Forward call.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

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

#[derive(Debug)]
struct Queued {
    topic: &'static str,
    event: Any,
    at: SystemTime,
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
            .spawn(move || {
                let mut sender = EventSender {
                    target,
                    reaper,
                    client: None,
                };
                for queued in rx {
                    sender.send_with_retries(&queued);
                }
            })?;
        Ok(Self { tx })
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
    client: Option<EventsClientDebug>,
}

/// `EventsClient` lacks `Debug`.
struct EventsClientDebug(EventsClient);

impl std::fmt::Debug for EventsClientDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventsClient")
    }
}

impl EventSender {
    fn send_with_retries(&mut self, queued: &Queued) {
        for attempt in 1..=MAX_ATTEMPTS {
            match self.send(queued) {
                Ok(()) => return,
                Err(e) => {
                    self.client = None;
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
        if self.client.is_none() {
            let address = if self.target.ttrpc_address.starts_with("unix://") {
                self.target.ttrpc_address.clone()
            } else {
                format!("unix://{}", self.target.ttrpc_address)
            };
            let client = ttrpc::Client::connect(&address)
                .map_err(|e| format!("connecting to {address}: {e}"))?;
            self.client = Some(EventsClientDebug(EventsClient::new(client)));
        }
        let Some(client) = &self.client else {
            return Err("no client".into());
        };
        let mut envelope = Envelope::new();
        envelope.timestamp = MessageField::some(timestamp(queued.at));
        envelope.namespace = self.target.namespace.clone();
        envelope.topic = queued.topic.to_string();
        envelope.event = MessageField::some(queued.event.clone());
        let mut request = ForwardRequest::new();
        request.envelope = MessageField::some(envelope);
        let mut ctx = ttrpc::context::with_duration(FORWARD_TIMEOUT);
        ctx.add(
            "containerd-namespace-ttrpc".to_string(),
            self.target.namespace.clone(),
        );
        client
            .0
            .forward(ctx, &request)
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
