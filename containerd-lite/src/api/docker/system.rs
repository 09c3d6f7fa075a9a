//! `/_ping`, `/version`, `/info`, `/system/df`.

use std::sync::Arc;

use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, PRAGMA};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::{
    API_VERSION, ApiError, ApiState, ENGINE_VERSION, MIN_API_VERSION, ResponseBody, blocking, json,
};

/// `GET|HEAD /_ping`: `OK`, plus the headers the CLI negotiates with.
pub fn ping(head: bool) -> Response<ResponseBody> {
    let body = if head {
        ResponseBody::empty()
    } else {
        ResponseBody::full("OK")
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    r
}

fn uname() -> (String, String) {
    let u = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        u.as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    (field(|u| u.release()), field(|u| u.machine()))
}

fn arch() -> &'static str {
    crate::images::oci::platform_arch()
}

/// `GET /version`.
pub fn version() -> Response<ResponseBody> {
    let (kernel, _) = uname();
    let details = json!({
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": kernel,
        "Experimental": "false",
        "BuildTime": "",
    });
    json(
        StatusCode::OK,
        &json!({
            "Platform": {"Name": "Skiff"},
            "Components": [{"Name": "Engine", "Version": ENGINE_VERSION, "Details": details}],
            "Version": ENGINE_VERSION,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": arch(),
            "KernelVersion": kernel,
            "BuildTime": "",
        }),
    )
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "Linux".into())
}

/// `GET /info`: every field `docker info` prints, with truthful values for what exists.
pub async fn info(state: &Arc<ApiState>) -> Result<Response<ResponseBody>, ApiError> {
    let svc = state.images.clone();
    let images = blocking(move || Ok(svc.list()?.len())).await?;
    let cs = state.containers.clone();
    let recs = blocking(move || Ok(cs.list()?)).await?;
    let count = |f: &dyn Fn(crate::containers::Status) -> bool| {
        recs.iter().filter(|r| f(r.state.status)).count()
    };
    let running = count(&|s| {
        matches!(
            s,
            crate::containers::Status::Running | crate::containers::Status::Restarting
        )
    });
    let paused = count(&|s| s == crate::containers::Status::Paused);
    let runtimes: serde_json::Map<String, Value> = state
        .containers
        .runtimes()
        .runtimes
        .iter()
        .map(|(n, p)| (n.clone(), json!({"path": p})))
        .collect();
    let default_runtime = state.containers.runtimes().default.clone();
    let (kernel, machine) = uname();
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let commit = json!({"ID": "", "Expected": ""});
    Ok(json(
        StatusCode::OK,
        &json!({
            "ID": "",
            "Containers": recs.len(), "ContainersRunning": running, "ContainersPaused": paused,
            "ContainersStopped": recs.len() - running - paused,
            "Images": images,
            "Driver": "overlayfs",
            "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": null, "Log": ["json-file"]},
            "MemoryLimit": false, "SwapLimit": false, "CpuCfsPeriod": false, "CpuCfsQuota": false,
            "CPUShares": false, "CPUSet": false, "PidsLimit": false, "IPv4Forwarding": true,
            "BridgeNfIptables": false, "BridgeNfIp6tables": false, "Debug": false,
            "NFd": 0, "OomKillDisable": false, "NGoroutines": 0,
            "SystemTime": crate::images::oci::format_rfc3339(crate::unix_now()),
            "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": "2",
            "NEventsListener": 0,
            "KernelVersion": kernel, "OperatingSystem": os_name(), "OSVersion": "", "OSType": "linux",
            "Architecture": machine,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": null, "AllowNondistributableArtifactsHostnames": null,
                "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": null},
            "NCPU": ncpu, "MemTotal": mem_total(), "GenericResources": null,
            "DockerRootDir": state.data_root.display().to_string(),
            "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
            "Name": hostname, "Labels": [], "ExperimentalBuild": false,
            "ServerVersion": ENGINE_VERSION,
            "Runtimes": runtimes, "DefaultRuntime": default_runtime,
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false,
                "Error": "", "RemoteManagers": null},
            "LiveRestoreEnabled": false, "Isolation": "", "InitBinary": "",
            "ContainerdCommit": commit, "RuncCommit": commit, "InitCommit": commit,
            "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
            "Warnings": Value::Array(vec![]),
        }),
    ))
}

/// `GET /system/df`: images and the layer bytes, containers (with the size of their writable
/// layer); volumes and build cache are empty until those exist.
pub async fn df(
    state: &Arc<ApiState>,
    api: (u32, u32),
) -> Result<Response<ResponseBody>, ApiError> {
    let svc = state.images.clone();
    let (images, layers) = blocking(move || {
        let list = svc.list()?;
        let layers: u64 = svc
            .snapshotter()
            .walk()
            .map_err(crate::images::Error::from)?
            .iter()
            .filter_map(|(_, r)| r.labels.get(crate::images::LABEL_SIZE))
            .filter_map(|s| s.parse::<u64>().ok())
            .sum();
        let images: Vec<Value> = list
            .iter()
            .map(|i| {
                let mut s = super::images::summary(i, api);
                s["Containers"] = json!(0);
                s
            })
            .collect();
        Ok((images, layers))
    })
    .await?;
    let cs = state.containers.clone();
    let snaps = state.images.clone();
    let containers = blocking(move || {
        Ok(cs
            .list()?
            .iter()
            .map(|r| {
                let mut v = super::containers::summary(r);
                let rw = snaps
                    .snapshotter()
                    .usage(&r.snapshot)
                    .map(|u| u.size)
                    .unwrap_or(0);
                v["SizeRw"] = json!(rw);
                v["SizeRootFs"] = json!(rw);
                v
            })
            .collect::<Vec<Value>>())
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "LayersSize": layers,
            "Images": images,
            "Containers": containers,
            "Volumes": [],
            "BuildCache": [],
        }),
    ))
}
