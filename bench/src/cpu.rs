//! CPU time spent over a stretch of the run by the bench's own process
//! (clients, services, projector) and by nats-server, read from `/proc`:
//! what an event costs in CPU, however fast the machine was at the time and
//! however the cores were shared. When two runs both keep every core busy,
//! the ratio of their rates cannot exceed the inverse ratio of their CPU an
//! event, whatever is scheduled how.

use std::time::{Duration, Instant};

/// `/proc/<pid>/stat` counts in USER_HZ, which Linux fixes at 100 for
/// userspace on every architecture it reports it to.
const TICKS_PER_SECOND: u64 = 100;

/// CPU time of this process and of one other (nats-server) since it started.
#[derive(Debug, Clone, Copy)]
pub struct CpuClock {
    nats: u32,
    own_at_start: Duration,
    nats_at_start: Duration,
    started: Instant,
}

/// What a stretch of the run cost, per event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPerEvent {
    /// Microseconds of the bench process's CPU an event.
    pub own_us: f64,
    /// Microseconds of nats-server's CPU an event.
    pub nats_us: f64,
    /// Cores kept busy on average (both processes).
    pub cores_busy: f64,
}

impl CpuPerEvent {
    pub fn total_us(&self) -> f64 {
        self.own_us + self.nats_us
    }
}

impl CpuClock {
    /// Starts counting; `None` where `/proc` cannot be read (not Linux, or
    /// nats-server gone): the bench then leaves the CPU rows out.
    pub fn start(nats_pid: Option<u32>) -> Option<CpuClock> {
        let nats = nats_pid?;
        Some(CpuClock {
            nats,
            own_at_start: cpu_time("self")?,
            nats_at_start: cpu_time(&nats.to_string())?,
            started: Instant::now(),
        })
    }

    /// The CPU `events` cost since [`CpuClock::start`].
    pub fn per_event(&self, events: usize) -> Option<CpuPerEvent> {
        let own = cpu_time("self")?.saturating_sub(self.own_at_start);
        let nats = cpu_time(&self.nats.to_string())?.saturating_sub(self.nats_at_start);
        Some(split(own, nats, events, self.started.elapsed()))
    }
}

fn split(own: Duration, nats: Duration, events: usize, elapsed: Duration) -> CpuPerEvent {
    let events = events.max(1) as f64;
    CpuPerEvent {
        own_us: own.as_secs_f64() * 1e6 / events,
        nats_us: nats.as_secs_f64() * 1e6 / events,
        cores_busy: (own + nats).as_secs_f64() / elapsed.as_secs_f64().max(1e-9),
    }
}

/// User plus system time of process `pid` ("self" for this one), all its
/// threads, those that ended included.
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// utime and stime, fields 14 and 15 of `/proc/<pid>/stat`. The command
/// name (field 2) is in parentheses and may hold spaces or parentheses,
/// so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (user + system) * 1000 / TICKS_PER_SECOND,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 1290 0 0 0 250 75 0 0 20 0 9 0 12345 1000000 500 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(Duration::from_millis(3_250)));
        assert_eq!(parse_stat("4242 (truncated) S 1"), None);
    }

    #[test]
    fn this_process_counts_the_cpu_it_burns() {
        let spent = cpu_time("self").expect("/proc/self/stat on Linux");
        // Spin until the count moves (a tick is 10 ms of CPU); a count read
        // from the wrong fields would never move.
        let give_up = Instant::now() + Duration::from_secs(30);
        let mut spins = 0u64;
        while cpu_time("self").expect("again") <= spent {
            spins = spins.wrapping_add(1);
            assert!(
                Instant::now() < give_up,
                "no CPU counted after {spins} reads"
            );
        }
    }

    #[test]
    fn cost_is_split_per_event_and_busy_cores_over_the_wall_clock() {
        let cost = split(
            Duration::from_secs(3),
            Duration::from_secs(1),
            1_000_000,
            Duration::from_secs(2),
        );
        assert_eq!(cost.own_us, 3.0);
        assert_eq!(cost.nats_us, 1.0);
        assert_eq!(cost.total_us(), 4.0);
        assert_eq!(cost.cores_busy, 2.0);
    }
}
