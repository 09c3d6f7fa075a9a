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
    // v2 when /sys/fs/cgroup itself is cgroup2; v1 (also the v1/v2 hybrid) otherwise.
    let cgroup_version = if crate::containers::host_info().cgroup2 {
        "2"
    } else {
        "1"
    };
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
            "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": cgroup_version,
            "NEventsListener": 0,
            "KernelVersion": kernel, "OperatingSystem": os_name(), "OSVersion": "", "OSType": "linux",
            "Architecture": machine,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": null, "AllowNondistributableArtifactsHostnames": null,
                "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": null},
            "NCPU": ncpu, "MemTotal": crate::containers::stats::host_memory().unwrap_or(0), "GenericResources": null,
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

/// `GET /system/df[?type=container&type=image…]`: images (with how many containers use
/// each) and the layer bytes, containers (the size of their writable layer, and of their whole
/// root filesystem); volumes and build cache are empty until those exist.
pub async fn df(
    state: &Arc<ApiState>,
    q: &super::Query,
    api: (u32, u32),
) -> Result<Response<ResponseBody>, ApiError> {
    let types = q.all("type");
    for t in &types {
        if !matches!(t.as_str(), "container" | "image" | "volume" | "build-cache") {
            return Err(ApiError::new(
                crate::ErrorKind::InvalidArgument,
                format!("unknown object type: {t}"),
            ));
        }
    }
    let wants = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
    let (want_images, want_containers) = (wants("image"), wants("container"));
    let images = state.images.clone();
    let cs = state.containers.clone();
    let (layers, images, containers) = blocking(move || {
        let recs = cs.list()?;
        let mut images_out = Vec::new();
        let mut layers = 0;
        if want_images {
            layers = images
                .snapshotter()
                .walk()
                .map_err(crate::images::Error::from)?
                .iter()
                .filter_map(|(_, r)| r.labels.get(crate::images::LABEL_SIZE))
                .filter_map(|s| s.parse::<u64>().ok())
                .sum();
            // SharedSize: the bytes of an image's layers that other images use too (the CLI's
            // RECLAIMABLE counts an image in use as its size less that).
            let list = images.list()?;
            let chains: Vec<Vec<String>> = list
                .iter()
                .map(|i| {
                    crate::images::oci::chain_ids(&i.config.rootfs.diff_ids)
                        .iter()
                        .map(ToString::to_string)
                        .collect()
                })
                .collect();
            for (n, i) in list.iter().enumerate() {
                let id = i.id.to_string();
                let mut s = super::images::summary(i, api);
                s["Containers"] = json!(recs.iter().filter(|r| r.image_id == id).count());
                let sizes = i.layer_sizes(&images);
                let shared: u64 = chains[n]
                    .iter()
                    .zip(&sizes)
                    .filter(|(c, _)| {
                        chains
                            .iter()
                            .enumerate()
                            .any(|(m, other)| m != n && other.contains(c))
                    })
                    .map(|(_, size)| *size)
                    .sum();
                s["SharedSize"] = json!(shared);
                images_out.push(s);
            }
        }
        let containers: Vec<Value> = if want_containers {
            recs.iter()
                .map(|r| {
                    let mut v = super::containers::summary(r);
                    let (rw, rootfs) = super::containers::container_sizes(&images, r);
                    v["SizeRw"] = json!(rw);
                    v["SizeRootFs"] = json!(rootfs);
                    v
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok((layers, images_out, containers))
    })
    .await?;
    let mut out = serde_json::Map::new();
    if want_images {
        out.insert("LayersSize".into(), json!(layers));
        out.insert("Images".into(), json!(images));
    }
    if want_containers {
        out.insert("Containers".into(), json!(containers));
    }
    if wants("volume") {
        out.insert("Volumes".into(), json!([]));
    }
    if wants("build-cache") {
        out.insert("BuildCache".into(), json!([]));
    }
    Ok(json(StatusCode::OK, &Value::Object(out)))
}
