//! How long to wait before the next attempt: exponential, capped, with
//! jitter so that many deliveries failing together do not retry together.
//! Pure: the jitter's random numbers are passed in.

use std::time::Duration;

/// The retry policy of every delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all, the first included; after the last the delivery is parked.
    pub attempts: u32,
    /// The wait after the first failure, doubled after each.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// The wait after failed attempt `n` (1-based), scaled by `jitter` in
    /// [0, 1): between half and all of `base * 2^(n-1)`, capped at `max`.
    pub fn wait(&self, n: u32, jitter: f64) -> Duration {
        let doubled = self
            .base
            .saturating_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX));
        let full = doubled.min(self.max);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_within_their_jitter() {
        let b = Backoff {
            attempts: 8,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(b.wait(1, 0.0), Duration::from_millis(50));
        assert_eq!(b.wait(1, 1.0), Duration::from_millis(100));
        assert_eq!(b.wait(3, 1.0), Duration::from_millis(400));
        assert_eq!(b.wait(5, 1.0), Duration::from_secs(1), "capped");
        assert_eq!(b.wait(40, 0.5), Duration::from_millis(750), "no overflow");
        for n in 1..10 {
            assert!(b.wait(n, 0.3) <= b.wait(n, 0.9));
            assert!(b.wait(n, 0.9) <= b.wait(n + 1, 0.9).max(b.max));
        }
    }
}
