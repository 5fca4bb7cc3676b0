//! The key space of the views' sled tree: every kind of key, how it is
//! built and how it is read back.
//!
//! One tree, so that one `apply_batch` covers every change an event causes
//! and the stream position that says it was applied:
//!
//! | key | value |
//! |---|---|
//! | `m/schema`, `m/catalog`, `m/position`, `m/stream-time`, `m/in-doubt` | store schema, catalog version, last applied stream sequence, latest stream time applied; why the views must be rebuilt, when they must |
//! | `h/<handoff>` | [`HandoffView`](crate::view::HandoffView) |
//! | `b/<policy>/<handoff>/<cycle>` | [`BreachRecord`] |
//! | `a/<policy>/<hour:8 BE>/<supplier>/<customer>` | [`Tallies`](baton_domain::compliance::Tallies) of the clocks that started in that hour |
//! | `p/<hour:8 BE>/<supplier>/<customer>` | [`PairTallies`](crate::view::PairTallies) of the hand-offs requested in that hour |
//! | `r/<supplier>/<disruption>` | [`DisruptionView`](crate::view::DisruptionView) |
//! | `q/<supplier>/<requested_at:8 BE><handoff>` | empty: hand-offs by first supplier and request time, to flag disruptions |
//! | `o/<announced 1\|0>/<deadline:8 BE, newest first>/<policy>/<handoff>/<cycle>` | empty: open breaches, live ones apart from history never paged |
//! | `k/<supplier>/<customer>/<announced 1\|0>/<deadline:8 BE>/<policy>/<handoff>/<cycle>` | empty: each pair's breaches by deadline |
//! | `x/b/...`, `x/c/...`, `x/w/...` + `<policy>/<handoff>/<cycle>` | [`BreachRecord`] of a breach, a correction (the promise held after all) or a warning, waiting to be announced (outbox) |
//!
//! Tokens never hold a `/` and instants are always 8 bytes, so every key
//! reads back into its parts (`Key::parse`); a key that does not is
//! damage, and an error, never a guess. Keys are built in one allocation:
//! `format!` cost more than the rest of an event's fold.
//!
//! It must never read or write sled, nor encode or decode values: keys only.

use baton_domain::{compliance::Contribution, id::check_token, Timestamp, Token};

use crate::view::{BreachRecord, PairContribution, Signal};

/// The kinds of key, each with the byte its keys start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Meta,
    Handoff,
    Breach,
    Tally,
    Pair,
    Disruption,
    Requested,
    OpenBreach,
    PairBreach,
    Outbox,
    Closed,
    Retired,
}

impl KeyKind {
    fn tag(self) -> u8 {
        match self {
            KeyKind::Meta => b'm',
            KeyKind::Handoff => b'h',
            KeyKind::Breach => b'b',
            KeyKind::Tally => b'a',
            KeyKind::Pair => b'p',
            KeyKind::Disruption => b'r',
            KeyKind::Requested => b'q',
            KeyKind::OpenBreach => b'o',
            KeyKind::PairBreach => b'k',
            KeyKind::Outbox => b'x',
            KeyKind::Closed => b'c',
            KeyKind::Retired => b'z',
        }
    }

    /// The kind a key is of, by its first byte (and the `/` after it).
    fn of(key: &[u8]) -> Option<KeyKind> {
        if key.get(1) != Some(&b'/') {
            return None;
        }
        Some(match key.first()? {
            b'm' => KeyKind::Meta,
            b'h' => KeyKind::Handoff,
            b'b' => KeyKind::Breach,
            b'a' => KeyKind::Tally,
            b'p' => KeyKind::Pair,
            b'r' => KeyKind::Disruption,
            b'q' => KeyKind::Requested,
            b'o' => KeyKind::OpenBreach,
            b'k' => KeyKind::PairBreach,
            b'x' => KeyKind::Outbox,
            b'c' => KeyKind::Closed,
            b'z' => KeyKind::Retired,
            _ => return None,
        })
    }

    /// `<tag>/`: where every key of the kind starts.
    pub(crate) fn prefix(self) -> [u8; 2] {
        [self.tag(), b'/']
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyKind::Meta => "metadata",
            KeyKind::Handoff => "hand-off",
            KeyKind::Breach => "breach",
            KeyKind::Tally => "tally",
            KeyKind::Pair => "pair tally",
            KeyKind::Disruption => "disruption",
            KeyKind::Requested => "requested-at index",
            KeyKind::OpenBreach => "open-breach index",
            KeyKind::PairBreach => "pair-breach index",
            KeyKind::Outbox => "outbox",
            KeyKind::Closed => "closed-at index",
            KeyKind::Retired => "retired hand-off",
        })
    }
}

/// A stored key that is not one of the views' keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key {key} is of no kind the views store")]
    UnknownKind { key: String },
    #[error("outbox key {key} has the unknown tag {tag:?}")]
    UnknownOutboxTag { key: String, tag: char },
    #[error("{kind} key {key} is malformed")]
    Malformed { kind: KeyKind, key: String },
}

impl KeyError {
    /// `key` was expected to be (and does not read as) a `kind` key.
    pub(crate) fn malformed(kind: KeyKind, key: &[u8]) -> KeyError {
        KeyError::Malformed {
            kind,
            key: shown(key),
        }
    }
}

/// A key as messages show it: its bytes, non-printable ones escaped.
fn shown(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

/// The metadata keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Meta {
    Schema,
    Catalog,
    Position,
    StreamTime,
    /// Set when the views are found at odds with the stream: the next open
    /// discards them and they are rebuilt.
    InDoubt,
}

impl Meta {
    const ALL: [Meta; 5] = [
        Meta::Schema,
        Meta::Catalog,
        Meta::Position,
        Meta::StreamTime,
        Meta::InDoubt,
    ];

    pub(crate) fn key(self) -> &'static [u8] {
        match self {
            Meta::Schema => b"m/schema",
            Meta::Catalog => b"m/catalog",
            Meta::Position => b"m/position",
            Meta::StreamTime => b"m/stream-time",
            Meta::InDoubt => b"m/in-doubt",
        }
    }
}

/// A clock cycle of a hand-off, as keys name it: `<policy>/<handoff>/<cycle>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClockKey<'a> {
    pub policy: &'a str,
    pub handoff: &'a str,
    pub cycle: u32,
}

impl<'a> ClockKey<'a> {
    pub(crate) fn new(policy: &'a Token, handoff: &'a Token, cycle: u32) -> ClockKey<'a> {
        ClockKey {
            policy: policy.as_str(),
            handoff: handoff.as_str(),
            cycle,
        }
    }

    /// The clock a breach (or warning) record is of.
    pub(crate) fn of(record: &'a BreachRecord) -> ClockKey<'a> {
        ClockKey::new(&record.policy_id, &record.handoff_id, record.cycle)
    }
}

/// A supplier x customer pair, as keys name it: `<supplier>/<customer>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PairKey<'a> {
    pub supplier: &'a str,
    pub customer: &'a str,
}

impl<'a> PairKey<'a> {
    pub(crate) fn new(supplier: &'a Token, customer: &'a Token) -> PairKey<'a> {
        PairKey {
            supplier: supplier.as_str(),
            customer: customer.as_str(),
        }
    }
}

/// One key of the tree, its parts borrowed: from tokens when building it,
/// from the key's own bytes when reading it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key<'a> {
    Meta(Meta),
    Handoff(&'a str),
    Breach(ClockKey<'a>),
    /// The tallies of a promise's clocks that started in the hour `bucket`.
    Tally {
        policy: &'a str,
        bucket: Timestamp,
        pair: PairKey<'a>,
    },
    /// A pair's figures of the hand-offs requested in the hour `bucket`.
    Pair {
        bucket: Timestamp,
        pair: PairKey<'a>,
    },
    Disruption {
        supplier: &'a str,
        disruption: &'a str,
    },
    /// A hand-off by its first supplier and the time it was requested.
    Requested {
        supplier: &'a str,
        at: Timestamp,
        handoff: &'a str,
    },
    OpenBreach {
        announced: bool,
        deadline: Timestamp,
        clock: ClockKey<'a>,
    },
    PairBreach {
        pair: PairKey<'a>,
        announced: bool,
        deadline: Timestamp,
        clock: ClockKey<'a>,
    },
    Outbox {
        signal: Signal,
        clock: ClockKey<'a>,
    },
    /// A closed hand-off by the time its closing event happened: the
    /// order in which views are retired.
    Closed {
        at: Timestamp,
        handoff: &'a str,
    },
    /// A hand-off whose view was retired: its figures stay, its story is
    /// in the log.
    Retired(&'a str),
}

/// The start of a run of keys, for scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix<'a> {
    /// Every key of a kind.
    Kind(KeyKind),
    BreachesOf(&'a str),
    TalliesOf(&'a str),
    DisruptionsOf(&'a str),
    RequestedOf(&'a str),
    OpenBreaches {
        announced: bool,
    },
    PairBreaches {
        pair: PairKey<'a>,
        announced: bool,
    },
}

/// The parts of a key, in one allocation.
fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

fn flag(announced: bool) -> &'static [u8] {
    if announced {
        b"1/"
    } else {
        b"0/"
    }
}

fn outbox_tag(signal: Signal) -> u8 {
    match signal {
        Signal::Breach => b'b',
        Signal::Correction => b'c',
        Signal::Warning => b'w',
        Signal::Acknowledged => b'a',
    }
}

fn signal_of(tag: u8) -> Option<Signal> {
    match tag {
        b'b' => Some(Signal::Breach),
        b'c' => Some(Signal::Correction),
        b'w' => Some(Signal::Warning),
        b'a' => Some(Signal::Acknowledged),
        _ => None,
    }
}

/// Orders signed instants correctly as bytes.
pub(crate) fn instant_bytes(at: Timestamp) -> [u8; 8] {
    ((at.0 as u64) ^ (1 << 63)).to_be_bytes()
}

fn instant_from(raw: [u8; 8]) -> Timestamp {
    Timestamp((u64::from_be_bytes(raw) ^ (1 << 63)) as i64)
}

/// Orders instants newest first as bytes.
fn newest_first(at: Timestamp) -> [u8; 8] {
    (!((at.0 as u64) ^ (1 << 63))).to_be_bytes()
}

fn newest_first_from(raw: [u8; 8]) -> Timestamp {
    Timestamp(((!u64::from_be_bytes(raw)) ^ (1 << 63)) as i64)
}

/// The keys of stored things, from the things themselves.
impl<'a> Key<'a> {
    pub(crate) fn handoff(handoff: &'a Token) -> Key<'a> {
        Key::Handoff(handoff.as_str())
    }

    pub(crate) fn breach(policy: &'a Token, handoff: &'a Token, cycle: u32) -> Key<'a> {
        Key::Breach(ClockKey::new(policy, handoff, cycle))
    }

    /// Where a clock's contribution is tallied.
    pub(crate) fn tally(c: &'a Contribution) -> Key<'a> {
        Key::Tally {
            policy: c.policy_id.as_str(),
            bucket: c.bucket,
            pair: PairKey::new(&c.supplier, &c.customer),
        }
    }

    /// Where a hand-off's share of its pair's figures is counted.
    pub(crate) fn pair(c: &'a PairContribution) -> Key<'a> {
        Key::Pair {
            bucket: c.bucket,
            pair: PairKey::new(&c.supplier, &c.customer),
        }
    }

    pub(crate) fn disruption(supplier: &'a Token, disruption: &'a Token) -> Key<'a> {
        Key::Disruption {
            supplier: supplier.as_str(),
            disruption: disruption.as_str(),
        }
    }

    pub(crate) fn requested(supplier: &'a Token, at: Timestamp, handoff: &'a Token) -> Key<'a> {
        Key::Requested {
            supplier: supplier.as_str(),
            at,
            handoff: handoff.as_str(),
        }
    }

    pub(crate) fn closed(at: Timestamp, handoff: &'a Token) -> Key<'a> {
        Key::Closed {
            at,
            handoff: handoff.as_str(),
        }
    }

    pub(crate) fn retired(handoff: &'a Token) -> Key<'a> {
        Key::Retired(handoff.as_str())
    }

    pub(crate) fn outbox(
        signal: Signal,
        policy: &'a Token,
        handoff: &'a Token,
        cycle: u32,
    ) -> Key<'a> {
        Key::Outbox {
            signal,
            clock: ClockKey::new(policy, handoff, cycle),
        }
    }

    /// The open-breach index entry of a breach, while it is open (`None`
    /// once closed). Announced breaches list apart from history that was
    /// recorded but never paged, the latest deadline first.
    pub(crate) fn open_breach(r: &'a BreachRecord) -> Option<Key<'a>> {
        r.stopped_at.is_none().then(|| Key::OpenBreach {
            announced: r.announce,
            deadline: r.deadline,
            clock: ClockKey::of(r),
        })
    }

    /// The pair index entry of a breach, to find a pair's breaches in a
    /// window without reading all of them.
    pub(crate) fn pair_breach(r: &'a BreachRecord) -> Key<'a> {
        Key::PairBreach {
            pair: PairKey::new(&r.supplier, &r.customer),
            announced: r.announce,
            deadline: r.deadline,
            clock: ClockKey::of(r),
        }
    }
}

impl<'a> Key<'a> {
    pub(crate) fn kind(&self) -> KeyKind {
        match self {
            Key::Meta(_) => KeyKind::Meta,
            Key::Handoff(_) => KeyKind::Handoff,
            Key::Breach(_) => KeyKind::Breach,
            Key::Tally { .. } => KeyKind::Tally,
            Key::Pair { .. } => KeyKind::Pair,
            Key::Disruption { .. } => KeyKind::Disruption,
            Key::Requested { .. } => KeyKind::Requested,
            Key::OpenBreach { .. } => KeyKind::OpenBreach,
            Key::PairBreach { .. } => KeyKind::PairBreach,
            Key::Outbox { .. } => KeyKind::Outbox,
            Key::Closed { .. } => KeyKind::Closed,
            Key::Retired(_) => KeyKind::Retired,
        }
    }

    /// The key's bytes, as stored.
    pub(crate) fn to_bytes(self) -> Vec<u8> {
        let tag = self.kind().prefix();
        match self {
            Key::Meta(meta) => meta.key().to_vec(),
            Key::Handoff(handoff) => join(&[&tag, handoff.as_bytes()]),
            Key::Breach(clock) => clock_joined(&[&tag], clock),
            Key::Tally {
                policy,
                bucket,
                pair,
            } => join(&[
                &tag,
                policy.as_bytes(),
                b"/",
                &instant_bytes(bucket),
                b"/",
                pair.supplier.as_bytes(),
                b"/",
                pair.customer.as_bytes(),
            ]),
            Key::Pair { bucket, pair } => join(&[
                &tag,
                &instant_bytes(bucket),
                b"/",
                pair.supplier.as_bytes(),
                b"/",
                pair.customer.as_bytes(),
            ]),
            Key::Disruption {
                supplier,
                disruption,
            } => join(&[&tag, supplier.as_bytes(), b"/", disruption.as_bytes()]),
            Key::Requested {
                supplier,
                at,
                handoff,
            } => join(&[
                &tag,
                supplier.as_bytes(),
                b"/",
                &instant_bytes(at),
                handoff.as_bytes(),
            ]),
            Key::OpenBreach {
                announced,
                deadline,
                clock,
            } => clock_joined(
                &[&tag, flag(announced), &newest_first(deadline), b"/"],
                clock,
            ),
            Key::PairBreach {
                pair,
                announced,
                deadline,
                clock,
            } => {
                let prefix = Prefix::PairBreaches { pair, announced }.to_bytes();
                clock_joined(&[&prefix, &instant_bytes(deadline), b"/"], clock)
            }
            Key::Outbox { signal, clock } => {
                clock_joined(&[&tag, &[outbox_tag(signal), b'/']], clock)
            }
            Key::Closed { at, handoff } => join(&[&tag, &instant_bytes(at), handoff.as_bytes()]),
            Key::Retired(handoff) => join(&[&tag, handoff.as_bytes()]),
        }
    }

    /// Reads `key` back into its parts; a key of no known kind, or one that
    /// does not have its kind's parts, is an error.
    pub(crate) fn parse(key: &'a [u8]) -> Result<Key<'a>, KeyError> {
        let Some(kind) = KeyKind::of(key) else {
            return Err(KeyError::UnknownKind { key: shown(key) });
        };
        let mut parts = Parts {
            rest: &key[2..],
            kind,
            key,
        };
        let parsed = match kind {
            KeyKind::Meta => parts.meta()?,
            KeyKind::Handoff => Key::Handoff(parts.token()?),
            KeyKind::Breach => Key::Breach(parts.clock()?),
            KeyKind::Tally => Key::Tally {
                policy: parts.token_then_slash()?,
                bucket: parts.instant()?,
                pair: parts.slash().and_then(|()| parts.pair())?,
            },
            KeyKind::Pair => Key::Pair {
                bucket: parts.instant()?,
                pair: parts.slash().and_then(|()| parts.pair())?,
            },
            KeyKind::Disruption => Key::Disruption {
                supplier: parts.token_then_slash()?,
                disruption: parts.token()?,
            },
            KeyKind::Requested => Key::Requested {
                supplier: parts.token_then_slash()?,
                at: parts.instant()?,
                handoff: parts.token()?,
            },
            KeyKind::OpenBreach => Key::OpenBreach {
                announced: parts.flag()?,
                deadline: parts.newest_first()?,
                clock: parts.slash().and_then(|()| parts.clock())?,
            },
            KeyKind::PairBreach => Key::PairBreach {
                pair: PairKey {
                    supplier: parts.token_then_slash()?,
                    customer: parts.token_then_slash()?,
                },
                announced: parts.flag()?,
                deadline: parts.instant()?,
                clock: parts.slash().and_then(|()| parts.clock())?,
            },
            KeyKind::Outbox => Key::Outbox {
                signal: parts.signal()?,
                clock: parts.clock()?,
            },
            KeyKind::Closed => Key::Closed {
                at: parts.instant()?,
                handoff: parts.token()?,
            },
            KeyKind::Retired => Key::Retired(parts.token()?),
        };
        parts.end()?;
        Ok(parsed)
    }
}

/// `head`, then `<policy>/<handoff>/<cycle>`.
fn clock_joined(head: &[&[u8]], clock: ClockKey<'_>) -> Vec<u8> {
    let cycle = clock.cycle.to_string();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(head.len() + 5);
    parts.extend_from_slice(head);
    parts.extend_from_slice(&[
        clock.policy.as_bytes(),
        b"/",
        clock.handoff.as_bytes(),
        b"/",
        cycle.as_bytes(),
    ]);
    join(&parts)
}

impl Prefix<'_> {
    pub(crate) fn to_bytes(self) -> Vec<u8> {
        match self {
            Prefix::Kind(kind) => kind.prefix().to_vec(),
            Prefix::BreachesOf(policy) => join(&[b"b/", policy.as_bytes(), b"/"]),
            Prefix::TalliesOf(policy) => join(&[b"a/", policy.as_bytes(), b"/"]),
            Prefix::DisruptionsOf(supplier) => join(&[b"r/", supplier.as_bytes(), b"/"]),
            Prefix::RequestedOf(supplier) => join(&[b"q/", supplier.as_bytes(), b"/"]),
            Prefix::OpenBreaches { announced } => join(&[b"o/", flag(announced)]),
            Prefix::PairBreaches { pair, announced } => join(&[
                b"k/",
                pair.supplier.as_bytes(),
                b"/",
                pair.customer.as_bytes(),
                b"/",
                flag(announced),
            ]),
        }
    }
}

/// What is left of a key being read, front to back.
struct Parts<'a> {
    rest: &'a [u8],
    kind: KeyKind,
    key: &'a [u8],
}

impl<'a> Parts<'a> {
    fn malformed(&self) -> KeyError {
        KeyError::malformed(self.kind, self.key)
    }

    /// A token, up to the next `/` or the end.
    fn token(&mut self) -> Result<&'a str, KeyError> {
        let end = self
            .rest
            .iter()
            .position(|b| *b == b'/')
            .unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        let token = std::str::from_utf8(token).map_err(|_| self.malformed())?;
        check_token(token).map_err(|_| self.malformed())?;
        self.rest = rest;
        Ok(token)
    }

    fn slash(&mut self) -> Result<(), KeyError> {
        match self.rest.split_first() {
            Some((b'/', rest)) => {
                self.rest = rest;
                Ok(())
            }
            _ => Err(self.malformed()),
        }
    }

    fn token_then_slash(&mut self) -> Result<&'a str, KeyError> {
        let token = self.token()?;
        self.slash()?;
        Ok(token)
    }

    fn eight(&mut self) -> Result<[u8; 8], KeyError> {
        let Some((raw, rest)) = self.rest.split_first_chunk::<8>() else {
            return Err(self.malformed());
        };
        self.rest = rest;
        Ok(*raw)
    }

    fn instant(&mut self) -> Result<Timestamp, KeyError> {
        self.eight().map(instant_from)
    }

    fn newest_first(&mut self) -> Result<Timestamp, KeyError> {
        self.eight().map(newest_first_from)
    }

    /// `1/` or `0/`: announced or not.
    fn flag(&mut self) -> Result<bool, KeyError> {
        let announced = match self.rest.first() {
            Some(b'1') => true,
            Some(b'0') => false,
            _ => return Err(self.malformed()),
        };
        self.rest = &self.rest[1..];
        self.slash()?;
        Ok(announced)
    }

    /// An outbox entry's tag and the `/` after it.
    fn signal(&mut self) -> Result<Signal, KeyError> {
        let Some(&tag) = self.rest.first() else {
            return Err(self.malformed());
        };
        let Some(signal) = signal_of(tag) else {
            return Err(KeyError::UnknownOutboxTag {
                key: shown(self.key),
                tag: char::from(tag),
            });
        };
        self.rest = &self.rest[1..];
        self.slash()?;
        Ok(signal)
    }

    fn pair(&mut self) -> Result<PairKey<'a>, KeyError> {
        Ok(PairKey {
            supplier: self.token_then_slash()?,
            customer: self.token()?,
        })
    }

    /// `<policy>/<handoff>/<cycle>`, the cycle in decimal digits.
    fn clock(&mut self) -> Result<ClockKey<'a>, KeyError> {
        let policy = self.token_then_slash()?;
        let handoff = self.token_then_slash()?;
        let end = self
            .rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(self.rest.len());
        let (digits, rest) = self.rest.split_at(end);
        // Digits only (ASCII), so `from_utf8` cannot fail; `parse` refuses
        // none at all and a number past u32.
        let cycle = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| self.malformed())?;
        self.rest = rest;
        Ok(ClockKey {
            policy,
            handoff,
            cycle,
        })
    }

    fn meta(&mut self) -> Result<Key<'a>, KeyError> {
        let meta = Meta::ALL
            .into_iter()
            .find(|m| m.key() == self.key)
            .ok_or_else(|| self.malformed())?;
        self.rest = &[];
        Ok(Key::Meta(meta))
    }

    fn end(&self) -> Result<(), KeyError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.malformed())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Token {
        Token::parse(s).expect("token")
    }

    /// One key of every kind, with the bytes the schema table above lays
    /// down for it (stores of this schema version hold these).
    fn every_kind(at: Timestamp) -> Vec<(Key<'static>, Vec<u8>)> {
        let with_instant = |head: &str, instant: [u8; 8], tail: &str| {
            [head.as_bytes(), &instant, tail.as_bytes()].concat()
        };
        let clock = ClockKey {
            policy: "lab-stat",
            handoff: "h-1",
            cycle: 2,
        };
        let pair = PairKey {
            supplier: "lab",
            customer: "ward-5",
        };
        vec![
            (Key::Meta(Meta::StreamTime), b"m/stream-time".to_vec()),
            (Key::Handoff("h-1"), b"h/h-1".to_vec()),
            (Key::Breach(clock), b"b/lab-stat/h-1/2".to_vec()),
            (
                Key::Tally {
                    policy: "lab-stat",
                    bucket: at,
                    pair,
                },
                with_instant("a/lab-stat/", instant_bytes(at), "/lab/ward-5"),
            ),
            (
                Key::Pair { bucket: at, pair },
                with_instant("p/", instant_bytes(at), "/lab/ward-5"),
            ),
            (
                Key::Disruption {
                    supplier: "lab",
                    disruption: "d-1",
                },
                b"r/lab/d-1".to_vec(),
            ),
            (
                Key::Requested {
                    supplier: "lab",
                    at,
                    handoff: "h-1",
                },
                with_instant("q/lab/", instant_bytes(at), "h-1"),
            ),
            (
                Key::OpenBreach {
                    announced: true,
                    deadline: at,
                    clock,
                },
                with_instant("o/1/", newest_first(at), "/lab-stat/h-1/2"),
            ),
            (
                Key::PairBreach {
                    pair,
                    announced: false,
                    deadline: at,
                    clock,
                },
                with_instant("k/lab/ward-5/0/", instant_bytes(at), "/lab-stat/h-1/2"),
            ),
            (
                Key::Outbox {
                    signal: Signal::Correction,
                    clock,
                },
                b"x/c/lab-stat/h-1/2".to_vec(),
            ),
            (
                Key::Closed { at, handoff: "h-1" },
                with_instant("c/", instant_bytes(at), "h-1"),
            ),
            (Key::Retired("h-1"), b"z/h-1".to_vec()),
        ]
    }

    #[test]
    fn keys_are_laid_out_as_the_schema_says_and_read_back() {
        // An instant whose bytes hold a `/` (0x2f): read by length, not split.
        for at in [
            Timestamp(1_700_000_000_000),
            Timestamp(0x2f2f),
            Timestamp(-5),
        ] {
            for (key, bytes) in every_kind(at) {
                assert_eq!(key.to_bytes(), bytes, "{key:?}");
                assert_eq!(Key::parse(&bytes), Ok(key), "{}", shown(&bytes));
            }
        }
    }

    #[test]
    fn the_keys_of_stored_things_are_built_from_them() {
        let (h, p, s, c) = (t("h-1"), t("lab-stat"), t("lab"), t("ward-5"));
        let at = Timestamp(1_700_000_000_000);
        let with_instant = |head: &str, tail: &str| {
            [head.as_bytes(), &instant_bytes(at), tail.as_bytes()].concat()
        };
        assert_eq!(Key::handoff(&h).to_bytes(), b"h/h-1".to_vec());
        assert_eq!(
            Key::breach(&p, &h, 2).to_bytes(),
            b"b/lab-stat/h-1/2".to_vec()
        );
        assert_eq!(
            Key::requested(&s, at, &h).to_bytes(),
            with_instant("q/lab/", "h-1")
        );
        assert_eq!(
            Prefix::TalliesOf("lab-stat").to_bytes(),
            b"a/lab-stat/".to_vec()
        );
        let contribution = Contribution {
            policy_id: p.clone(),
            supplier: s.clone(),
            customer: c.clone(),
            bucket: at,
            tally: baton_domain::compliance::Tally::Met,
            duration: None,
            rejected: false,
            warned: false,
        };
        assert_eq!(
            Key::tally(&contribution).to_bytes(),
            with_instant("a/lab-stat/", "/lab/ward-5")
        );
        let pair = PairContribution {
            supplier: s,
            customer: c,
            bucket: at,
            rejected: false,
            disrupted: false,
            rating: None,
            late_entry_corrections: 0,
        };
        assert_eq!(
            Key::pair(&pair).to_bytes(),
            with_instant("p/", "/lab/ward-5")
        );
        assert_eq!(
            Key::outbox(Signal::Warning, &p, &h, 3).to_bytes(),
            b"x/w/lab-stat/h-1/3".to_vec()
        );
    }

    #[test]
    fn an_unknown_outbox_tag_is_an_error_not_a_breach() {
        assert_eq!(
            Key::parse(b"x/z/lab-stat/h-1/1"),
            Err(KeyError::UnknownOutboxTag {
                key: "x/z/lab-stat/h-1/1".into(),
                tag: 'z'
            })
        );
        assert!(matches!(
            Key::parse(b"x/b/lab-stat/h-1/1"),
            Ok(Key::Outbox {
                signal: Signal::Breach,
                ..
            })
        ));
    }

    #[test]
    fn keys_that_do_not_have_their_parts_are_errors() {
        let malformed = |kind| {
            move |key: &[u8]| {
                assert_eq!(
                    Key::parse(key),
                    Err(KeyError::malformed(kind, key)),
                    "{}",
                    shown(key)
                )
            }
        };
        let breach = malformed(KeyKind::Breach);
        breach(b"b/lab-stat/h-1");
        breach(b"b/lab-stat/h-1/");
        breach(b"b/lab-stat/h-1/x");
        breach(b"b/lab-stat/h-1/1/more");
        breach(b"b/lab stat/h-1/1");
        breach(b"b/lab-stat/h-1/99999999999");
        malformed(KeyKind::Handoff)(b"h/");
        malformed(KeyKind::Requested)(b"q/lab/1234");
        malformed(KeyKind::OpenBreach)(b"o/2/12345678/p/h/1");
        malformed(KeyKind::Meta)(b"m/unknown");
        assert!(matches!(
            Key::parse(b"d/old-index"),
            Err(KeyError::UnknownKind { .. })
        ));
        assert!(matches!(
            Key::parse(b"h"),
            Err(KeyError::UnknownKind { .. })
        ));
    }

    #[test]
    fn prefixes_start_their_keys() {
        let at = Timestamp(1_700_000_000_000);
        let pair = PairKey {
            supplier: "lab",
            customer: "ward-5",
        };
        let clock = ClockKey {
            policy: "lab-stat",
            handoff: "h-1",
            cycle: 1,
        };
        let starts = |prefix: Prefix<'_>, key: Key<'_>| {
            assert!(
                key.to_bytes().starts_with(&prefix.to_bytes()),
                "{prefix:?} {key:?}"
            )
        };
        starts(Prefix::BreachesOf("lab-stat"), Key::Breach(clock));
        starts(
            Prefix::TalliesOf("lab-stat"),
            Key::Tally {
                policy: "lab-stat",
                bucket: at,
                pair,
            },
        );
        starts(
            Prefix::DisruptionsOf("lab"),
            Key::Disruption {
                supplier: "lab",
                disruption: "d-1",
            },
        );
        starts(
            Prefix::RequestedOf("lab"),
            Key::Requested {
                supplier: "lab",
                at,
                handoff: "h-1",
            },
        );
        starts(
            Prefix::OpenBreaches { announced: false },
            Key::OpenBreach {
                announced: false,
                deadline: at,
                clock,
            },
        );
        starts(
            Prefix::PairBreaches {
                pair,
                announced: true,
            },
            Key::PairBreach {
                pair,
                announced: true,
                deadline: at,
                clock,
            },
        );
        starts(
            Prefix::Kind(KeyKind::Outbox),
            Key::Outbox {
                signal: Signal::Warning,
                clock,
            },
        );
    }

    #[test]
    fn instants_order_as_their_bytes_do() {
        let times = [i64::MIN, -1, 0, 1, 1_700_000_000_000, i64::MAX].map(Timestamp);
        for pair in times.windows(2) {
            assert!(instant_bytes(pair[0]) < instant_bytes(pair[1]));
            assert!(newest_first(pair[0]) > newest_first(pair[1]));
        }
        for at in times {
            assert_eq!(instant_from(instant_bytes(at)), at);
            assert_eq!(newest_first_from(newest_first(at)), at);
        }
    }
}
