//! How each kind of work behaves: how often it is asked for, and how long
//! it takes against its promise's target.

/// How a kind of work behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Share of the day's requests.
    pub weight: f64,
    /// Median service time as a share of the promise's target.
    pub median: f64,
    /// Log-normal spread (larger: a fatter tail of late ones).
    pub sigma: f64,
}

impl Profile {
    /// The profile of `kind`; a kind not listed gets a small share and
    /// middling times.
    pub fn of(kind: &str) -> Profile {
        let (weight, median, sigma) = match kind {
            "lab" => (0.32, 0.45, 0.55),
            "transport" => (0.14, 0.5, 0.6),
            "pharmacy" => (0.12, 0.4, 0.6),
            "imaging" => (0.1, 0.5, 0.55),
            "consult" => (0.1, 0.45, 0.75),
            "repair" => (0.08, 0.55, 0.7),
            "blood" => (0.06, 0.45, 0.5),
            // The Sepsis log: about 4 in 10 get antibiotics within the hour.
            "sepsis-antibiotics" => (0.04, 1.2, 0.9),
            _ => (0.05, 0.5, 0.6),
        };
        Profile {
            weight,
            median,
            sigma,
        }
    }
}
