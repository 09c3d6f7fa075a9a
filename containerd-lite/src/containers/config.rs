//! The container create request as the Docker API sends it (`container.CreateRequest`: the
//! flattened `Config`, `HostConfig`, `NetworkingConfig`), and its merge with the image config
//! (moby `daemon/create.go` `merge` + `getEntrypointAndArgs`). Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `null` → the type's default (the Go client sends `null` for empty slices and maps).
fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// docker's `StrSlice`: `null`, a string, or a list of strings.
fn str_slice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<S>::deserialize(d)? {
        None => None,
        Some(S::One(s)) => Some(vec![s]),
        Some(S::Many(v)) => Some(v),
    })
}

/// `Config` of a container (the subset of fields docker defines; unknown ones are dropped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `-h`.
    #[serde(default, deserialize_with = "null_default")]
    pub hostname: String,
    /// `--domainname`.
    #[serde(default, deserialize_with = "null_default")]
    pub domainname: String,
    /// `-u`.
    #[serde(default, deserialize_with = "null_default")]
    pub user: String,
    /// Attach stdin.
    #[serde(default, deserialize_with = "null_default")]
    pub attach_stdin: bool,
    /// Attach stdout.
    #[serde(default, deserialize_with = "null_default")]
    pub attach_stdout: bool,
    /// Attach stderr.
    #[serde(default, deserialize_with = "null_default")]
    pub attach_stderr: bool,
    /// Exposed ports (`{"80/tcp": {}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<Value>,
    /// `-t`.
    #[serde(default, deserialize_with = "null_default")]
    pub tty: bool,
    /// `-i`.
    #[serde(default, deserialize_with = "null_default")]
    pub open_stdin: bool,
    /// Close stdin after the first attach ends.
    #[serde(default, deserialize_with = "null_default")]
    pub stdin_once: bool,
    /// `KEY=value`.
    #[serde(default, deserialize_with = "null_default")]
    pub env: Vec<String>,
    /// The command.
    #[serde(default, deserialize_with = "str_slice")]
    pub cmd: Option<Vec<String>>,
    /// Healthcheck (kept, not run yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    /// Windows-only quoting hint.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    /// The image as the user named it.
    #[serde(default, deserialize_with = "null_default")]
    pub image: String,
    /// Anonymous volumes (`{"/data": {}}`).
    #[serde(default)]
    pub volumes: Option<Value>,
    /// `-w`.
    #[serde(default, deserialize_with = "null_default")]
    pub working_dir: String,
    /// `--entrypoint`.
    #[serde(default, deserialize_with = "str_slice")]
    pub entrypoint: Option<Vec<String>>,
    /// `--network none` in old clients.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub network_disabled: bool,
    /// Build triggers.
    #[serde(default)]
    pub on_build: Option<Value>,
    /// `-l`.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    /// `--stop-signal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `--stop-timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// `SHELL` of a build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    /// `no`, `always`, `on-failure`, `unless-stopped` ("" = no).
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// For `on-failure`.
    #[serde(default, deserialize_with = "null_default")]
    pub maximum_retry_count: i64,
}

/// `--ulimit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    /// `nofile`, `nproc`, ….
    pub name: String,
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// `--device`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    /// Host path.
    pub path_on_host: String,
    /// Path in the container ("" = same as on the host).
    #[serde(default, deserialize_with = "null_default")]
    pub path_in_container: String,
    /// `rwm`.
    #[serde(default, deserialize_with = "null_default")]
    pub cgroup_permissions: String,
}

/// `--mount` (bind and tmpfs are honoured; volumes come with the volumes issue).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountSpec {
    /// `bind`, `volume`, `tmpfs`.
    #[serde(rename = "Type", default, deserialize_with = "null_default")]
    pub kind: String,
    /// Source.
    #[serde(default, deserialize_with = "null_default")]
    pub source: String,
    /// Target.
    #[serde(default, deserialize_with = "null_default")]
    pub target: String,
    /// Read-only.
    #[serde(default, deserialize_with = "null_default")]
    pub read_only: bool,
}

/// `HostConfig` (the fields skiffd acts on; the request's whole JSON is kept for inspect).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// `-v src:dst[:opts]`.
    #[serde(default, deserialize_with = "null_default")]
    pub binds: Vec<String>,
    /// `--network`.
    #[serde(default, deserialize_with = "null_default")]
    pub network_mode: String,
    /// `--restart`.
    #[serde(default, deserialize_with = "null_default")]
    pub restart_policy: RestartPolicy,
    /// `--rm`.
    #[serde(default, deserialize_with = "null_default")]
    pub auto_remove: bool,
    /// `--cap-add` (normalised `CAP_X`, or `ALL`).
    #[serde(default, deserialize_with = "null_default")]
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    #[serde(default, deserialize_with = "null_default")]
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    #[serde(default, deserialize_with = "null_default")]
    pub privileged: bool,
    /// `--read-only`.
    #[serde(default, deserialize_with = "null_default")]
    pub readonly_rootfs: bool,
    /// `--security-opt`.
    #[serde(default, deserialize_with = "null_default")]
    pub security_opt: Vec<String>,
    /// `--tmpfs dst[:opts]`.
    #[serde(default, deserialize_with = "null_default")]
    pub tmpfs: BTreeMap<String, String>,
    /// `--shm-size` in bytes (0 = 64 MiB).
    #[serde(default, deserialize_with = "null_default")]
    pub shm_size: i64,
    /// `--sysctl`.
    #[serde(default, deserialize_with = "null_default")]
    pub sysctls: BTreeMap<String, String>,
    /// `--runtime`.
    #[serde(default, deserialize_with = "null_default")]
    pub runtime: String,
    /// `-m` in bytes.
    #[serde(default, deserialize_with = "null_default")]
    pub memory: i64,
    /// `--memory-swap` (memory + swap; -1 unlimited).
    #[serde(default, deserialize_with = "null_default")]
    pub memory_swap: i64,
    /// `--cpus` × 1e9.
    #[serde(default, deserialize_with = "null_default", rename = "NanoCpus")]
    pub nano_cpus: i64,
    /// `--cpu-shares`.
    #[serde(default, deserialize_with = "null_default")]
    pub cpu_shares: i64,
    /// `--cpu-period`.
    #[serde(default, deserialize_with = "null_default")]
    pub cpu_period: i64,
    /// `--cpu-quota`.
    #[serde(default, deserialize_with = "null_default")]
    pub cpu_quota: i64,
    /// `--cpuset-cpus`.
    #[serde(default, deserialize_with = "null_default")]
    pub cpuset_cpus: String,
    /// `--cpuset-mems`.
    #[serde(default, deserialize_with = "null_default")]
    pub cpuset_mems: String,
    /// `--device`.
    #[serde(default, deserialize_with = "null_default")]
    pub devices: Vec<DeviceMapping>,
    /// `--pids-limit` (0 or -1 = unlimited).
    #[serde(default)]
    pub pids_limit: Option<i64>,
    /// `--ulimit`.
    #[serde(default, deserialize_with = "null_default")]
    pub ulimits: Vec<Ulimit>,
    /// `--mount`.
    #[serde(default, deserialize_with = "null_default")]
    pub mounts: Vec<MountSpec>,
    /// `--init`.
    #[serde(default)]
    pub init: Option<bool>,
    /// `--oom-score-adj`.
    #[serde(default, deserialize_with = "null_default")]
    pub oom_score_adj: i64,
    /// `--group-add`.
    #[serde(default, deserialize_with = "null_default")]
    pub group_add: Vec<String>,
    /// `--add-host host:ip`.
    #[serde(default, deserialize_with = "null_default")]
    pub extra_hosts: Vec<String>,
    /// Paths masked in the container (docker fills its defaults in at create; empty with
    /// `--privileged` or `--security-opt systempaths=unconfined`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_paths: Option<Vec<String>>,
    /// Paths made read-only in the container (as `masked_paths`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_paths: Option<Vec<String>>,
}

impl HostConfig {
    /// Whether the container shares the host's network namespace.
    pub fn host_network(&self) -> bool {
        self.network_mode == "host"
    }

    /// Checks the resource settings as docker does before a create or an update
    /// (`verifyContainerResources`), with its words, so that a bad value is a 400 naming the
    /// field and not a runtime failure at start. `cpus` is the number of CPUs of the host.
    pub fn verify_resources(&self, cpus: usize) -> Result<(), String> {
        const MIN_MEMORY: i64 = 6 * 1024 * 1024;
        if self.memory != 0 && self.memory < MIN_MEMORY {
            return Err("Minimum memory limit allowed is 6MB".into());
        }
        if self.memory_swap > 0 && self.memory == 0 {
            return Err(
                "You should always set the Memory limit when using Memoryswap limit, see usage"
                    .into(),
            );
        }
        if self.memory > 0 && self.memory_swap > 0 && self.memory_swap < self.memory {
            return Err(
                "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
            );
        }
        let max_nano = i64::try_from(cpus).unwrap_or(i64::MAX / 1_000_000_000) * 1_000_000_000;
        if self.nano_cpus < 0 || self.nano_cpus > max_nano {
            return Err(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            ));
        }
        if self.nano_cpus > 0 && self.cpu_period > 0 {
            return Err("Conflicting options: Nano CPUs and CPU Period cannot both be set".into());
        }
        if self.nano_cpus > 0 && self.cpu_quota > 0 {
            return Err("Conflicting options: Nano CPUs and CPU Quota cannot both be set".into());
        }
        if self.cpu_period != 0 && !(1000..=1_000_000).contains(&self.cpu_period) {
            return Err(
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
                    .into(),
            );
        }
        if self.cpu_quota > 0 && self.cpu_quota < 1000 {
            return Err("CPU cfs quota can not be less than 1ms (i.e. 1000)".into());
        }
        if self.cpu_shares < 0 {
            return Err(format!(
                "invalid CPU shares ({}): value must be a positive integer",
                self.cpu_shares
            ));
        }
        for (what, list) in [
            ("CPUs", &self.cpuset_cpus),
            ("memory nodes", &self.cpuset_mems),
        ] {
            if !list.is_empty() && !valid_cpu_list(list) {
                return Err(format!("Invalid value {list} for cpuset {what}"));
            }
        }
        if !self.cpuset_cpus.is_empty() {
            let too_big = self
                .cpuset_cpus
                .split(',')
                .filter_map(|r| r.rsplit('-').next())
                .filter_map(|n| n.parse::<usize>().ok())
                .any(|n| n >= cpus);
            if too_big {
                return Err(format!(
                    "Requested CPUs are not available - requested {}, available: 0-{}",
                    self.cpuset_cpus,
                    cpus.saturating_sub(1)
                ));
            }
        }
        if !(-1000..=1000).contains(&self.oom_score_adj) {
            return Err(format!(
                "Invalid value {}, range for oom score adj is [-1000, 1000]",
                self.oom_score_adj
            ));
        }
        if self.shm_size < 0 {
            return Err("SHM size can not be less than 0".into());
        }
        Ok(())
    }

    /// The shm size in bytes (docker's default 64 MiB).
    pub fn shm_bytes(&self) -> i64 {
        if self.shm_size > 0 {
            self.shm_size
        } else {
            64 * 1024 * 1024
        }
    }
}

/// A cpuset list: `0`, `0-3`, `0,2-3`.
fn valid_cpu_list(s: &str) -> bool {
    s.split(',').all(|r| {
        let mut p = r.splitn(2, '-');
        let a = p.next().and_then(|n| n.parse::<u32>().ok());
        match (a, p.next()) {
            (Some(_), None) => true,
            (Some(a), Some(b)) => b.parse::<u32>().is_ok_and(|b| b >= a),
            (None, _) => false,
        }
    })
}

/// The image's runtime defaults (`config` of the image config JSON).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageDefaults {
    /// `ENV`.
    #[serde(default, deserialize_with = "null_default")]
    pub env: Vec<String>,
    /// `CMD`.
    #[serde(default, deserialize_with = "str_slice")]
    pub cmd: Option<Vec<String>>,
    /// `ENTRYPOINT`.
    #[serde(default, deserialize_with = "str_slice")]
    pub entrypoint: Option<Vec<String>>,
    /// `WORKDIR`.
    #[serde(default, deserialize_with = "null_default")]
    pub working_dir: String,
    /// `USER`.
    #[serde(default, deserialize_with = "null_default")]
    pub user: String,
    /// `LABEL`.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    /// `EXPOSE`.
    #[serde(default)]
    pub exposed_ports: Option<Value>,
    /// `VOLUME`.
    #[serde(default)]
    pub volumes: Option<Value>,
    /// `STOPSIGNAL`.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// `HEALTHCHECK`.
    #[serde(default)]
    pub healthcheck: Option<Value>,
}

impl ImageDefaults {
    /// From an image config document (its `config` object; missing → empty).
    pub fn from_image_config(doc: &Value) -> Self {
        doc.get("config")
            .cloned()
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or_default()
    }
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

/// Merges the image's defaults into the user's config (moby `merge`): env by key (user wins),
/// labels (user wins), exposed ports and volumes united, and entrypoint/cmd/workdir/user/stop
/// signal from the image where the user gave none. An explicit `--entrypoint` drops the image's
/// `CMD`, as in docker.
pub fn merge(user: &ContainerConfig, image: &ImageDefaults) -> ContainerConfig {
    let mut c = user.clone();
    let mut env: Vec<String> = image
        .env
        .iter()
        .filter(|e| !user.env.iter().any(|u| env_key(u) == env_key(e)))
        .cloned()
        .collect();
    env.extend(user.env.iter().cloned());
    c.env = env;
    let mut labels = image.labels.clone();
    labels.extend(user.labels.clone());
    c.labels = labels;
    if c.user.is_empty() {
        c.user.clone_from(&image.user);
    }
    if c.working_dir.is_empty() {
        c.working_dir.clone_from(&image.working_dir);
    }
    let user_entrypoint = user.entrypoint.as_ref().filter(|e| !e.is_empty());
    match user_entrypoint {
        // `--entrypoint ""` resets the image's entrypoint.
        Some(e) if e.len() == 1 && e[0].is_empty() => c.entrypoint = None,
        Some(_) => {}
        None => {
            if user.cmd.as_ref().is_none_or(Vec::is_empty) {
                c.cmd.clone_from(&image.cmd);
            }
            c.entrypoint.clone_from(&image.entrypoint);
        }
    }
    c.exposed_ports = union_objects(image.exposed_ports.as_ref(), user.exposed_ports.as_ref());
    c.volumes = union_objects(image.volumes.as_ref(), user.volumes.as_ref());
    if c.stop_signal.is_none() {
        c.stop_signal.clone_from(&image.stop_signal);
    }
    if c.healthcheck.is_none() {
        c.healthcheck.clone_from(&image.healthcheck);
    }
    c
}

fn union_objects(a: Option<&Value>, b: Option<&Value>) -> Option<Value> {
    let mut out = serde_json::Map::new();
    for v in [a, b].into_iter().flatten() {
        if let Some(o) = v.as_object() {
            out.extend(o.clone());
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// The process's argv: entrypoint then cmd (moby `getEntrypointAndArgs`).
pub fn argv(c: &ContainerConfig) -> Vec<String> {
    let mut v: Vec<String> = c.entrypoint.clone().unwrap_or_default();
    v.extend(c.cmd.clone().unwrap_or_default());
    v
}

/// argv as one line (events' `exec_start: sh -c …`).
pub fn argv_display(v: &[String]) -> String {
    v.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(v: Value) -> ContainerConfig {
        serde_json::from_value(v).unwrap()
    }

    fn image(v: Value) -> ImageDefaults {
        ImageDefaults::from_image_config(&json!({ "config": v }))
    }

    #[test]
    fn resources_are_checked_as_docker_does() {
        let h = |v: Value| -> HostConfig { serde_json::from_value(v).unwrap() };
        let ok = |v: Value| h(v).verify_resources(2);
        assert!(ok(json!({})).is_ok());
        assert!(ok(json!({"Memory": 6_291_456, "MemorySwap": -1, "NanoCpus": 1_500_000_000, "CpusetCpus": "0-1", "PidsLimit": -1})).is_ok());
        assert!(ok(json!({"CpuPeriod": 100_000, "CpuQuota": 50_000, "CpusetCpus": "0,1"})).is_ok());
        for (v, want) in [
            (json!({"Memory": 1}), "Minimum memory limit allowed is 6MB"),
            (
                json!({"MemorySwap": 10_000_000}),
                "always set the Memory limit",
            ),
            (
                json!({"Memory": 20_000_000, "MemorySwap": 10_000_000}),
                "larger than memory limit",
            ),
            (
                json!({"NanoCpus": 3_000_000_000_i64}),
                "Range of CPUs is from 0.01 to 2.00",
            ),
            (
                json!({"NanoCpus": 1_000_000_000, "CpuPeriod": 100_000}),
                "Conflicting options",
            ),
            (
                json!({"NanoCpus": 1_000_000_000, "CpuQuota": 50_000}),
                "Conflicting options",
            ),
            (json!({"CpuPeriod": 10}), "CPU cfs period"),
            (json!({"CpuQuota": 10}), "CPU cfs quota"),
            (json!({"CpuShares": -2}), "CPU shares"),
            (
                json!({"CpusetCpus": "1-0"}),
                "Invalid value 1-0 for cpuset CPUs",
            ),
            (json!({"CpusetCpus": "x"}), "Invalid value x"),
            (
                json!({"CpusetCpus": "0-7"}),
                "Requested CPUs are not available",
            ),
            (json!({"OomScoreAdj": 1001}), "oom score adj"),
            (json!({"ShmSize": -1}), "SHM size"),
        ] {
            let e = ok(v.clone()).unwrap_err();
            assert!(e.contains(want), "{v}: {e}");
        }
    }

    #[test]
    fn parses_nulls_and_str_slices() {
        let c = user(
            json!({"Env": null, "Cmd": "echo hi", "Entrypoint": null, "Labels": null,
            "Hostname": "", "Image": "busybox"}),
        );
        assert!(c.env.is_empty());
        assert_eq!(c.cmd, Some(vec!["echo hi".to_owned()]));
        assert_eq!(c.entrypoint, None);
        let h: HostConfig = serde_json::from_value(json!({"Binds": null, "NanoCpus": 1500000000,
            "PidsLimit": null, "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}}))
        .unwrap();
        assert_eq!(h.nano_cpus, 1_500_000_000);
        assert_eq!(h.shm_bytes(), 64 << 20);
    }

    #[test]
    fn merges_like_docker() {
        let img = image(
            json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/w",
            "Labels": {"x": "img", "y": "img"}, "Entrypoint": null}),
        );
        let c = merge(
            &user(json!({"Env": ["A=2", "B=3"], "Labels": {"x": "user"}})),
            &img,
        );
        assert_eq!(c.env, vec!["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(c.cmd, Some(vec!["sh".to_owned()]));
        assert_eq!(c.working_dir, "/w");
        assert_eq!(c.labels["x"], "user");
        assert_eq!(c.labels["y"], "img");
        assert_eq!(argv(&c), vec!["sh"]);

        // A user cmd replaces the image's.
        let c = merge(&user(json!({"Cmd": ["echo", "hi"]})), &img);
        assert_eq!(argv(&c), vec!["echo", "hi"]);

        // --entrypoint drops the image's cmd.
        let img = image(json!({"Entrypoint": ["/init"], "Cmd": ["serve"]}));
        let c = merge(&user(json!({"Entrypoint": ["/bin/sh"]})), &img);
        assert_eq!(argv(&c), vec!["/bin/sh"]);
        let c = merge(&user(json!({})), &img);
        assert_eq!(argv(&c), vec!["/init", "serve"]);
        let c = merge(&user(json!({"Cmd": ["x"]})), &img);
        assert_eq!(argv(&c), vec!["/init", "x"]);
        // --entrypoint "" resets it.
        let c = merge(&user(json!({"Entrypoint": [""], "Cmd": ["ls"]})), &img);
        assert_eq!(argv(&c), vec!["ls"]);
    }
}
