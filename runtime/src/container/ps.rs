//! `ps`: the container's processes, from its cgroup.

use std::path::Path;

use super::{Error, manager};
use crate::state::{StateDir, Status};

/// Host pids of every process in the container's cgroup, sorted.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>, Error> {
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    if dir.status(&state) == Status::Stopped {
        // The cgroup may still exist (with nothing in it) until delete.
        return Ok(Vec::new());
    }
    // Sorted and without duplicates already (Manager::pids).
    Ok(manager(&state)?.pids()?)
}

/// One row of `ps`'s table, read from `/proc/<pid>` (runc runs the host's `ps -ef` and
/// filters its lines; reading /proc gives the same columns without a program of the host's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRow {
    pub uid: u32,
    pub pid: i32,
    pub ppid: i32,
    /// Accumulated user + system CPU time in seconds.
    pub cpu_secs: u64,
    pub cmd: String,
}

impl ProcessRow {
    /// Read the row of `pid`; `None` if it exited meanwhile.
    pub fn read(pid: i32) -> Option<ProcessRow> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        parse_row(pid, &stat, &status, &cmdline)
    }
}

fn parse_row(pid: i32, stat: &str, status: &str, cmdline: &[u8]) -> Option<ProcessRow> {
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    let close = stat.rfind(')')?;
    let comm = stat.get(stat.find('(')? + 1..close)?;
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After the name: state(3) ppid(4) … utime(14) stime(15).
    let ppid = fields.get(1)?.parse().ok()?;
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|h| *h > 0)
        .unwrap_or(100) as u64;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let cmd = if args.is_empty() {
        format!("[{comm}]")
    } else {
        args.join(" ")
    };
    Some(ProcessRow {
        uid,
        pid,
        ppid,
        cpu_secs: ticks / hz,
        cmd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_from_proc_text() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 1 0 5000 1000 100";
        let status = "Name:\tx\nUid:\t1000\t1001\t1001\t1001\nGid:\t0\t0\t0\t0\n";
        let row = parse_row(1234, stat, status, b"sleep\x001000\x00").expect("row");
        assert_eq!(row.pid, 1234);
        assert_eq!(row.ppid, 1);
        assert_eq!(row.uid, 1001);
        assert_eq!(row.cmd, "sleep 1000");
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as u64;
        assert_eq!(row.cpu_secs, 400 / hz);
        let kernel = parse_row(7, stat, status, b"").expect("row");
        assert_eq!(kernel.cmd, "[my (odd) name]");
    }
}
