//! `docker commit --change`: Dockerfile instructions applied to the new image's config.
//!
//! Docker accepts only the instructions that change the config, not the filesystem: `CMD`,
//! `ENTRYPOINT`, `ENV`, `EXPOSE`, `HEALTHCHECK`, `LABEL`, `ONBUILD`, `STOPSIGNAL`, `USER`,
//! `VOLUME`, `WORKDIR`; anything else is refused as "not a valid change command". They apply
//! in order, with the Dockerfile's rules: the exec (JSON) and shell forms of `CMD` and
//! `ENTRYPOINT`, an `ENTRYPOINT` that clears the command unless a `CMD` came before it, `ENV`
//! in both its `k=v` and legacy `k v` forms, quoting, and `$VAR` / `${VAR}` expansion from the
//! environment built so far in the arguments of `ENV`, `EXPOSE`, `LABEL`, `STOPSIGNAL`, `USER`,
//! `VOLUME` and `WORKDIR`. The config is the Docker API's `Config` object, as JSON. Pure.

use serde_json::{Map, Value, json};

/// Instructions that `commit --change` takes.
const VALID: [&str; 11] = [
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Dockerfile instructions that exist but change the filesystem or the build.
const OTHER: [&str; 7] = ["ADD", "ARG", "COPY", "FROM", "MAINTAINER", "RUN", "SHELL"];

/// Applies `changes` (one instruction each) to `config` in order. The error names the change.
pub fn apply(config: &mut Value, changes: &[String]) -> Result<(), String> {
    if !config.is_object() {
        *config = json!({});
    }
    let mut cmd_set = false;
    for change in changes {
        let line = join_continuations(change);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        apply_one(config, line, &mut cmd_set).map_err(|e| format!("--change {change:?}: {e}"))?;
    }
    Ok(())
}

/// A Dockerfile line continued with a trailing backslash is one instruction.
fn join_continuations(s: &str) -> String {
    s.replace("\\\r\n", " ").replace("\\\n", " ")
}

fn apply_one(config: &mut Value, line: &str, cmd_set: &mut bool) -> Result<(), String> {
    let (word, rest) = match line.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (line, ""),
    };
    let instr = word.to_ascii_uppercase();
    if !VALID.contains(&instr.as_str()) {
        return Err(if OTHER.contains(&instr.as_str()) {
            format!("{instr} is not a valid change command")
        } else {
            format!("unknown instruction: {word}")
        });
    }
    let cfg = config
        .as_object_mut()
        .ok_or("the config is not an object")?;
    let env = env_of(cfg);
    match instr.as_str() {
        "CMD" => {
            let v = command_form(cfg, rest)?;
            cfg.insert("Cmd".into(), v);
            *cmd_set = true;
        }
        "ENTRYPOINT" => {
            let v = command_form(cfg, rest)?;
            cfg.insert("Entrypoint".into(), v);
            // Docker: a new entrypoint drops the old command unless a CMD set one already.
            if !*cmd_set {
                cfg.insert("Cmd".into(), Value::Null);
            }
        }
        "ENV" => {
            let pairs = key_values(rest, &env, "ENV", true)?;
            let mut list = env;
            for (k, v) in pairs {
                let entry = format!("{k}={v}");
                match list
                    .iter_mut()
                    .find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == k)
                {
                    Some(e) => *e = entry,
                    None => list.push(entry),
                }
            }
            cfg.insert("Env".into(), json!(list));
        }
        "LABEL" => {
            let pairs = key_values(rest, &env, "LABEL", false)?;
            let labels = object_field(cfg, "Labels");
            for (k, v) in pairs {
                labels.insert(k, json!(v));
            }
        }
        "EXPOSE" => {
            let ports = words(rest, &env)?;
            if ports.is_empty() {
                return Err("EXPOSE requires at least one argument".into());
            }
            let mut keys = Vec::new();
            for p in &ports {
                keys.extend(exposed_ports(p)?);
            }
            let exposed = object_field(cfg, "ExposedPorts");
            for k in keys {
                exposed.insert(k, json!({}));
            }
        }
        "VOLUME" => {
            let paths = match json_array(rest) {
                Some(v) => v,
                None => words(rest, &env)?,
            };
            if paths.is_empty() {
                return Err("VOLUME requires at least one argument".into());
            }
            if paths.iter().any(|p| p.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            let volumes = object_field(cfg, "Volumes");
            for p in paths {
                volumes.insert(p, json!({}));
            }
        }
        "USER" => {
            let w = one_word(rest, &env, "USER")?;
            cfg.insert("User".into(), json!(w));
        }
        "WORKDIR" => {
            let w = one_word(rest, &env, "WORKDIR")?;
            let current = cfg.get("WorkingDir").and_then(Value::as_str).unwrap_or("");
            cfg.insert("WorkingDir".into(), json!(workdir(current, &w)));
        }
        "STOPSIGNAL" => {
            let w = one_word(rest, &env, "STOPSIGNAL")?;
            check_signal(&w)?;
            cfg.insert("StopSignal".into(), json!(w));
        }
        "ONBUILD" => {
            let (next, _) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            match next.to_ascii_uppercase().as_str() {
                "" => return Err("ONBUILD requires at least one argument".into()),
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into());
                }
                n @ ("FROM" | "MAINTAINER") => {
                    return Err(format!("{n} isn't allowed as an ONBUILD trigger"));
                }
                _ => {}
            }
            let triggers = cfg
                .entry("OnBuild")
                .or_insert_with(|| json!([]))
                .as_array_mut();
            match triggers {
                Some(t) => t.push(json!(rest)),
                None => {
                    cfg.insert("OnBuild".into(), json!([rest]));
                }
            }
        }
        "HEALTHCHECK" => {
            let v = healthcheck(rest)?;
            cfg.insert("Healthcheck".into(), v);
        }
        _ => unreachable!("every valid instruction is handled"),
    }
    Ok(())
}

/// A list-of-strings field of the config (`Env`, `Shell`); empty when missing.
fn strings_of(cfg: &Map<String, Value>, key: &str) -> Vec<String> {
    cfg.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The environment of the config so far, as `K=V` entries.
fn env_of(cfg: &Map<String, Value>) -> Vec<String> {
    strings_of(cfg, "Env")
}

/// The map under `key`, created (or replacing a `null`) when missing.
fn object_field<'a>(cfg: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = cfg.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("made an object above")
}

/// A JSON array of strings (the exec form), or `None` if `s` is not one (Docker then takes the
/// text as the shell form).
fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// `CMD` / `ENTRYPOINT`: the exec form as it is, the shell form through the config's shell.
fn command_form(cfg: &Map<String, Value>, rest: &str) -> Result<Value, String> {
    if let Some(v) = json_array(rest) {
        return Ok(json!(v));
    }
    if rest.is_empty() {
        return Ok(json!([]));
    }
    let mut shell = strings_of(cfg, "Shell");
    if shell.is_empty() {
        shell = vec!["/bin/sh".into(), "-c".into()];
    }
    shell.push(rest.to_owned());
    Ok(json!(shell))
}

/// `ENV` / `LABEL` arguments: `k=v` words, or (ENV only) the legacy `k value with spaces`.
fn key_values(
    rest: &str,
    env: &[String],
    instr: &str,
    legacy: bool,
) -> Result<Vec<(String, String)>, String> {
    let ws = words(rest, env)?;
    if ws.is_empty() {
        return Err(format!("{instr} requires at least one argument"));
    }
    if legacy && !ws[0].contains('=') {
        // `ENV name value…`: the value is the rest of the line, expanded, quotes removed.
        let (name, value) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{instr} must have two arguments"))?;
        let value = words(value.trim(), env)?.join(" ");
        return Ok(vec![(name.to_owned(), value)]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("{instr} names can not be blank")),
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            )),
        })
        .collect()
}

fn one_word(rest: &str, env: &[String], instr: &str) -> Result<String, String> {
    let ws = words(rest, env)?;
    match ws.as_slice() {
        [w] => Ok(w.clone()),
        [] => Err(format!("{instr} requires exactly one argument")),
        _ => Err(format!(
            "{instr} requires exactly one argument, got {}",
            ws.len()
        )),
    }
}

/// Splits a line into words as the Dockerfile does: whitespace separates, double quotes group
/// (backslash escapes inside), single quotes group literally, a backslash escapes the next
/// character, and `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME:+alternative}` expand from
/// `env` outside single quotes.
fn words(s: &str, env: &[String]) -> Result<Vec<String>, String> {
    let lookup = |name: &str| {
        env.iter().rev().find_map(|e| {
            e.split_once('=')
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        })
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (None | Some('"'), '\\') => {
                in_word = true;
                match chars.next() {
                    // Inside double quotes only `\"`, `\\` and `\$` are escapes.
                    Some(n) if quote.is_none() || matches!(n, '"' | '\\' | '$') => cur.push(n),
                    Some(n) => {
                        cur.push('\\');
                        cur.push(n);
                    }
                    None => cur.push('\\'),
                }
            }
            (None | Some('"'), '$') => {
                in_word = true;
                cur.push_str(&expand(&mut chars, &lookup)?);
            }
            (_, c) => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!(
            "unexpected end of statement while looking for matching {q}"
        ));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// The text a `$` starts (the `$` already read).
fn expand(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if chars.peek() == Some(&'{') {
        chars.next();
        let mut body = String::new();
        loop {
            match chars.next() {
                Some('}') => break,
                Some(c) => body.push(c),
                None => return Err("missing '}' in a variable reference".into()),
            }
        }
        let (name, op, word) = match body.find(":-").or_else(|| body.find(":+")) {
            Some(i) => (&body[..i], &body[i..i + 2], &body[i + 2..]),
            None => (body.as_str(), "", ""),
        };
        if name.is_empty() || !name.chars().all(is_name) {
            return Err(format!("bad substitution: ${{{body}}}"));
        }
        let value = lookup(name);
        return Ok(match op {
            ":-" => value
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| word.into()),
            ":+" => value
                .filter(|v| !v.is_empty())
                .map(|_| word.to_owned())
                .unwrap_or_default(),
            _ => value.unwrap_or_default(),
        });
    }
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if !is_name(c) {
            break;
        }
        name.push(c);
        chars.next();
    }
    if name.is_empty() {
        return Ok("$".into());
    }
    Ok(lookup(&name).unwrap_or_default())
}

/// `EXPOSE` words: `80`, `80/udp`, `8000-8002/tcp` → `ExposedPorts` keys.
fn exposed_ports(spec: &str) -> Result<Vec<String>, String> {
    let (range, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid containerPort: {p}"))
    };
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(range)?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(format!(
            "invalid range specified for containerPort: {range}"
        ));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// `WORKDIR`: an absolute path replaces, a relative one is joined to the current one; the
/// result is cleaned (no `.`, `..` or doubled slashes).
fn workdir(current: &str, w: &str) -> String {
    let joined = if w.starts_with('/') {
        w.to_owned()
    } else {
        format!("{}/{w}", if current.is_empty() { "/" } else { current })
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A signal as Docker's `signal.ParseSignal` takes it: a number, or a name with or without
/// `SIG`.
fn check_signal(s: &str) -> Result<(), String> {
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(())
        } else {
            Err(format!("Invalid signal: {s}"))
        };
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    let rt = name
        .strip_prefix("SIGRTMIN")
        .or_else(|| name.strip_prefix("SIGRTMAX"));
    let ok = name.parse::<nix::sys::signal::Signal>().is_ok()
        || rt.is_some_and(|r| {
            r.is_empty() || r.trim_start_matches(['+', '-']).parse::<u8>().is_ok()
        });
    if ok {
        Ok(())
    } else {
        Err(format!("Invalid signal: {s}"))
    }
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=…] [--timeout=…] [--start-period=…]
/// [--start-interval=…] [--retries=N] CMD …`.
fn healthcheck(rest: &str) -> Result<Value, String> {
    if rest.eq_ignore_ascii_case("NONE") {
        return Ok(json!({"Test": ["NONE"]}));
    }
    let mut hc = Map::new();
    let mut r = rest;
    while let Some(flag) = r.strip_prefix("--") {
        let (f, after) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        let (name, value) = f
            .split_once('=')
            .ok_or_else(|| format!("HEALTHCHECK flag --{f} needs a value (--{f}=…)"))?;
        let key = match name {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => "Retries",
            _ => return Err(format!("unknown flag: --{name}")),
        };
        if key == "Retries" {
            let n: i64 = value
                .parse()
                .map_err(|_| format!("invalid --retries value {value:?}"))?;
            if n < 0 {
                return Err("--retries cannot be negative".into());
            }
            hc.insert(key.into(), json!(n));
        } else {
            let d = crate::events::go_duration(value)
                .ok_or_else(|| format!("invalid --{name} duration {value:?}"))?;
            hc.insert(key.into(), json!(d));
        }
        r = after.trim_start();
    }
    let (word, cmd) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
    if !word.eq_ignore_ascii_case("CMD") {
        return Err(format!("Unknown type {word:?} in HEALTHCHECK (try CMD)"));
    }
    let cmd = cmd.trim();
    let test = match json_array(cmd) {
        Some(v) => {
            let mut t = vec!["CMD".to_owned()];
            t.extend(v);
            t
        }
        None if cmd.is_empty() => return Err("Missing command after HEALTHCHECK CMD".into()),
        None => vec!["CMD-SHELL".to_owned(), cmd.to_owned()],
    };
    hc.insert("Test".into(), json!(test));
    Ok(Value::Object(hc))
}

/// Fills the empty fields of a commit's new config from the container's, as moby's `merge`
/// does after the changes were applied: `User`, `WorkingDir`, `StopSignal`, `OnBuild` when
/// empty; `Env` entries, `Labels`, `ExposedPorts` and `Volumes` keys the new config lacks;
/// `Cmd` only when the new config has neither an entrypoint nor a command (a new entrypoint
/// keeps its own, empty command), `Entrypoint` when it has none at all; and the health
/// check's unset durations and retries.
pub fn merge_container_config(new: &mut Value, container: &Value) {
    let (Some(n), Some(c)) = (new.as_object_mut(), container.as_object()) else {
        return;
    };
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Number(x)) => x.as_i64() == Some(0),
        Some(Value::Bool(_)) => false,
    };
    for k in ["User", "WorkingDir", "StopSignal", "OnBuild"] {
        if empty(n.get(k)) && !empty(c.get(k)) {
            n.insert(k.into(), c[k].clone());
        }
    }
    let mut env = env_of(n);
    for e in strings_of(c, "Env") {
        let name = e.split_once('=').map_or(e.as_str(), |(k, _)| k).to_owned();
        if !env
            .iter()
            .any(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) == name)
        {
            env.push(e);
        }
    }
    if !env.is_empty() {
        n.insert("Env".into(), json!(env));
    }
    for k in ["Labels", "ExposedPorts", "Volumes"] {
        if let Some(m) = c.get(k).and_then(Value::as_object) {
            let target = object_field(n, k);
            for (mk, mv) in m {
                target.entry(mk.clone()).or_insert_with(|| mv.clone());
            }
        }
    }
    if empty(n.get("Entrypoint")) {
        if empty(n.get("Cmd")) {
            if let Some(cmd) = c.get("Cmd") {
                n.insert("Cmd".into(), cmd.clone());
            }
        }
        if n.get("Entrypoint").is_none_or(Value::is_null) {
            if let Some(ep) = c.get("Entrypoint") {
                n.insert("Entrypoint".into(), ep.clone());
            }
        }
    }
    match (n.get_mut("Healthcheck"), c.get("Healthcheck")) {
        (Some(Value::Object(h)), Some(Value::Object(ch))) => {
            for k in [
                "Test",
                "Interval",
                "Timeout",
                "StartPeriod",
                "StartInterval",
                "Retries",
            ] {
                if empty(h.get(k)) {
                    if let Some(v) = ch.get(k) {
                        h.insert(k.into(), v.clone());
                    }
                }
            }
        }
        (None | Some(Value::Null), Some(ch)) => {
            n.insert("Healthcheck".into(), ch.clone());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(base: Value, changes: &[&str]) -> Result<Value, String> {
        let mut c = base;
        let changes: Vec<String> = changes.iter().map(|s| (*s).to_owned()).collect();
        apply(&mut c, &changes)?;
        Ok(c)
    }

    #[test]
    fn cmd_and_entrypoint_in_both_forms() {
        let c = applied(json!({"Cmd": ["sh"]}), &[r#"CMD ["echo", "a b"]"#]).unwrap();
        assert_eq!(c["Cmd"], json!(["echo", "a b"]));
        let c = applied(json!({}), &["cmd echo $HOME"]).unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo $HOME"]));
        // A new entrypoint drops the container's command...
        let c = applied(json!({"Cmd": ["sh"]}), &[r#"ENTRYPOINT ["/bin/echo"]"#]).unwrap();
        assert_eq!(c["Entrypoint"], json!(["/bin/echo"]));
        assert_eq!(c["Cmd"], Value::Null);
        // ...but not one set by a CMD before it.
        let c = applied(json!({}), &[r#"CMD ["x"]"#, "ENTRYPOINT top -b"]).unwrap();
        assert_eq!(c["Cmd"], json!(["x"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "top -b"]));
        // A SHELL of the image is the shell of the shell form.
        let c = applied(json!({"Shell": ["/bin/ash", "-eo"]}), &["CMD true"]).unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/ash", "-eo", "true"]));
        // Not a JSON array of strings: the shell form, as Docker.
        let c = applied(json!({}), &["CMD [1, 2]"]).unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "[1, 2]"]));
    }

    #[test]
    fn env_forms_quotes_and_expansion() {
        let c = applied(
            json!({"Env": ["PATH=/bin", "A=old"]}),
            &[
                r#"ENV A=new B="two words" C=${A}-$PATH D='$A'"#,
                "ENV LEGACY some value  here",
                r"ENV E=a\ b F=${NOPE:-dflt} G=${A:+set}",
            ],
        )
        .unwrap();
        assert_eq!(
            c["Env"],
            json!([
                "PATH=/bin",
                "A=new",
                "B=two words",
                "C=old-/bin",
                "D=$A",
                "LEGACY=some value here",
                "E=a b",
                "F=dflt",
                "G=set"
            ])
        );
        for (bad, want) in [
            ("ENV =x", "blank"),
            ("ENV A=1 B", "can't find ="),
            (r#"ENV A="open"#, "matching \""),
            ("ENV", "requires"),
        ] {
            let e = applied(json!({}), &[bad]).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn maps_ports_volumes_user_workdir_signal_onbuild() {
        let c = applied(
            json!({"Labels": {"keep": "1"}, "WorkingDir": "/srv", "Env": ["P=8080"]}),
            &[
                r#"LABEL a=b "c d"="e f""#,
                "EXPOSE 80 $P/udp 9000-9002",
                r#"VOLUME ["/data", "/logs"]"#,
                "VOLUME /x /y",
                "USER nobody:nogroup",
                "WORKDIR app/../web/./static",
                "STOPSIGNAL SIGUSR1",
                "ONBUILD RUN echo built",
                "onbuild env X=1",
            ],
        )
        .unwrap();
        assert_eq!(c["Labels"], json!({"keep": "1", "a": "b", "c d": "e f"}));
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "8080/udp": {}, "9000/tcp": {}, "9001/tcp": {}, "9002/tcp": {}})
        );
        assert_eq!(
            c["Volumes"],
            json!({"/data": {}, "/logs": {}, "/x": {}, "/y": {}})
        );
        assert_eq!(c["User"], "nobody:nogroup");
        assert_eq!(c["WorkingDir"], "/srv/web/static");
        assert_eq!(c["StopSignal"], "SIGUSR1");
        assert_eq!(c["OnBuild"], json!(["RUN echo built", "env X=1"]));
        let c = applied(json!({}), &["WORKDIR rel", "STOPSIGNAL 10"]).unwrap();
        assert_eq!(c["WorkingDir"], "/rel");
        assert_eq!(c["StopSignal"], "10");
        for (bad, want) in [
            ("EXPOSE 0", "invalid containerPort"),
            ("EXPOSE 80/icmp", "invalid proto"),
            ("EXPOSE 90-80", "invalid range"),
            ("STOPSIGNAL SIGNOPE", "Invalid signal"),
            ("STOPSIGNAL 99", "Invalid signal"),
            ("USER a b", "exactly one"),
            ("ONBUILD ONBUILD RUN x", "Chaining"),
            ("ONBUILD FROM x", "isn't allowed"),
            ("LABEL x", "can't find ="),
        ] {
            let e = applied(json!({}), &[bad]).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
            assert!(e.contains(bad), "the error names the change: {e}");
        }
        assert_eq!(
            applied(json!({}), &["STOPSIGNAL RTMIN+3"]).unwrap()["StopSignal"],
            "RTMIN+3"
        );
    }

    #[test]
    fn only_config_instructions_are_changes() {
        for i in [
            "RUN true",
            "COPY a b",
            "FROM busybox",
            "SHELL [\"sh\"]",
            "ADD x y",
        ] {
            let e = applied(json!({}), &[i]).unwrap_err();
            assert!(e.contains("is not a valid change command"), "{i}: {e}");
        }
        let e = applied(json!({}), &["FROB x"]).unwrap_err();
        assert!(e.contains("unknown instruction: FROB"), "{e}");
        // Empty changes and comments change nothing.
        assert_eq!(
            applied(json!({"A": 1}), &["", "# note"]).unwrap(),
            json!({"A": 1})
        );
    }

    #[test]
    fn healthcheck_forms() {
        let c = applied(
            json!({}),
            &["HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD wget -q localhost"],
        )
        .unwrap();
        assert_eq!(
            c["Healthcheck"],
            json!({"Interval": 90_000_000_000_i64, "Timeout": 500_000_000, "Retries": 3,
                   "Test": ["CMD-SHELL", "wget -q localhost"]})
        );
        let c = applied(json!({}), &[r#"HEALTHCHECK CMD ["true"]"#]).unwrap();
        assert_eq!(c["Healthcheck"], json!({"Test": ["CMD", "true"]}));
        let c = applied(json!({}), &["HEALTHCHECK none"]).unwrap();
        assert_eq!(c["Healthcheck"], json!({"Test": ["NONE"]}));
        for bad in [
            "HEALTHCHECK --interval=soon CMD true",
            "HEALTHCHECK --every=1s CMD true",
            "HEALTHCHECK RUN true",
            "HEALTHCHECK CMD",
        ] {
            assert!(applied(json!({}), &[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_containers_config_fills_what_the_new_one_leaves_empty() {
        let container = json!({"Cmd": ["sh"], "Entrypoint": null, "Env": ["A=1", "B=2"],
            "Labels": {"x": "1"}, "User": "root", "WorkingDir": "/w",
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5, "Retries": 2}});
        // A given config (the request's body): its fields win, the rest comes from the container.
        let mut new =
            json!({"Cmd": ["echo"], "Env": ["B=3", "C=4"], "Labels": {"y": "2"}, "User": ""});
        merge_container_config(&mut new, &container);
        assert_eq!(new["Cmd"], json!(["echo"]));
        assert_eq!(new["Env"], json!(["B=3", "C=4", "A=1"]));
        assert_eq!(new["Labels"], json!({"x": "1", "y": "2"}));
        assert_eq!(new["User"], "root");
        assert_eq!(new["WorkingDir"], "/w");
        // A new entrypoint keeps its empty command; a new health check keeps what it sets.
        let mut new = container.clone();
        apply(
            &mut new,
            &[
                r#"ENTRYPOINT ["top"]"#.to_owned(),
                "HEALTHCHECK --interval=1s CMD false".to_owned(),
            ],
        )
        .unwrap();
        merge_container_config(&mut new, &container);
        assert_eq!(new["Entrypoint"], json!(["top"]));
        assert_eq!(new["Cmd"], Value::Null);
        assert_eq!(
            new["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "false"], "Interval": 1_000_000_000, "Retries": 2})
        );
    }
}
