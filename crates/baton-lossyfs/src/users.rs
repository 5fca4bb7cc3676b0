//! The processes on the filesystem, and how they die with the power.
//!
//! FUSE tells which thread made each request. The first time a thread is
//! seen, its process (thread group) and that process's start time are read
//! from `/proc`, so a process is known by (pid, start time) and a recycled
//! pid is never mistaken for it. At an outage the test names the processes
//! to kill; every other process that used the filesystem since the last
//! outage must be gone already, or the outage is refused: nothing may go on
//! writing to a disk that lost its power.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use nix::{errno::Errno, sys::signal::Signal, unistd::Pid};

use crate::LossyError;

/// How long a killed process may take to be gone.
const DEATH_WITHIN: Duration = Duration::from_secs(10);

/// A process: its pid and its start time in clock ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Process {
    pub(crate) pid: u32,
    pub(crate) start: u64,
}

/// The processes that made requests since the last outage.
#[derive(Debug, Default)]
pub(crate) struct Users {
    threads: HashSet<u32>,
    processes: HashSet<Process>,
}

impl Users {
    /// Notes the thread `tid` (0: the kernel itself, ignored).
    pub(crate) fn saw(&mut self, tid: u32) {
        if tid == 0 || !self.threads.insert(tid) {
            return;
        }
        if let Some(process) = thread_group(tid) {
            self.processes.insert(process);
        }
    }

    /// Processes that used the filesystem, are still alive, and are
    /// neither this process nor among `victims`.
    pub(crate) fn survivors(&self, victims: &[u32]) -> Vec<(u32, String)> {
        let me = std::process::id();
        let mut out: Vec<(u32, String)> = self
            .processes
            .iter()
            .filter(|p| p.pid != me && !victims.contains(&p.pid))
            .filter(|p| alive(p.pid).is_some_and(|start| start == p.start))
            .map(|p| (p.pid, command(p.pid)))
            .collect();
        out.sort();
        out
    }

    pub(crate) fn clear(&mut self) {
        self.threads.clear();
        self.processes.clear();
    }
}

/// The process a thread belongs to, if it still runs.
fn thread_group(tid: u32) -> Option<Process> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let pid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()?;
    let start = alive(pid)?;
    Some(Process { pid, start })
}

/// The start time of `pid` if it is running (not gone, not a zombie).
fn alive(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces and parentheses: the fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (field 3 of proc(5)); starttime is field 22.
    let state = fields.first()?;
    if *state == "Z" || *state == "X" {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn command(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_default()
}

/// SIGKILLs every victim at once, then waits until each is gone (a zombie
/// waiting for its parent counts as gone: it holds no file open).
pub(crate) fn kill_all(victims: &[u32]) -> Result<(), LossyError> {
    let me = std::process::id();
    for &pid in victims {
        if pid == me || pid == 0 {
            return Err(LossyError::NotAVictim { pid });
        }
        let Ok(raw) = i32::try_from(pid) else {
            return Err(LossyError::NotAVictim { pid });
        };
        match nix::sys::signal::kill(Pid::from_raw(raw), Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => return Err(LossyError::Kill { pid, errno: e }),
        }
    }
    let deadline = Instant::now() + DEATH_WITHIN;
    for &pid in victims {
        while alive(pid).is_some() {
            if Instant::now() > deadline {
                return Err(LossyError::Undead {
                    pid,
                    command: command(pid),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(())
}
