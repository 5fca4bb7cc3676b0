//! Reading the views.
//!
//! Every key read back here is parsed by [`crate::keys`]: a key that is
//! not what its place in the tree says is an error, never skipped.
//!
//! It must never write: changes go through a [`crate::Projection`], in a
//! batch.

use baton_domain::{
    compliance::{bucket_start, Tallies},
    lifecycle::HandoffStatus,
    Timestamp, Token,
};

use std::collections::BTreeMap;

use crate::{
    codec::decode,
    keys::{instant_bytes, Key, KeyError, KeyKind, PairKey, Prefix},
    view::{BreachRecord, DisruptionView, HandoffView, OpenClock, PairTallies, Signal},
    Views, ViewsError,
};

/// Which clocks a compliance figure counts: one promise or all, optionally
/// one supplier and/or customer, clocks started in `[from, to)`.
#[derive(Debug, Clone, Default)]
pub struct ComplianceScope {
    pub policy: Option<Token>,
    pub supplier: Option<Token>,
    pub customer: Option<Token>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// How a series is cut into buckets.
#[derive(Debug, Clone)]
pub enum Bucketing {
    Hour,
    /// Calendar days in this time zone (a hospital's day, not UTC's).
    Day(jiff::tz::TimeZone),
}

impl Bucketing {
    /// The start of the bucket holding the hour starting at `hour`.
    pub fn start_of(&self, hour: Timestamp) -> Timestamp {
        match self {
            Bucketing::Hour => hour,
            Bucketing::Day(tz) => jiff::Timestamp::from_millisecond(hour.0)
                .ok()
                .and_then(|t| t.to_zoned(tz.clone()).start_of_day().ok())
                .map(|day| Timestamp(day.timestamp().as_millisecond()))
                .unwrap_or(hour),
        }
    }
}

/// One supplier x customer pair: its clocks (all promises) and its hand-offs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatrixCell {
    pub clocks: Tallies,
    pub handoffs: PairTallies,
}

/// Whether a walk over stored values goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

/// One page of results and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct HandoffFilter {
    pub supplier: Option<Token>,
    pub customer: Option<Token>,
    pub kind: Option<Token>,
    pub status: Option<HandoffStatus>,
}

#[derive(Debug, Clone, Default)]
pub struct BreachFilter {
    pub policy: Option<Token>,
    pub supplier: Option<Token>,
    pub customer: Option<Token>,
    pub open_only: bool,
}

fn matches(want: &Option<Token>, have: &Token) -> bool {
    want.as_ref().is_none_or(|w| w == have)
}

/// Whether a tally of `pair` is in `scope`'s supplier and customer.
fn in_scope(scope: &ComplianceScope, pair: PairKey<'_>) -> bool {
    let wanted =
        |want: &Option<Token>, have: &str| want.as_ref().is_none_or(|w| w.as_str() == have);
    wanted(&scope.supplier, pair.supplier) && wanted(&scope.customer, pair.customer)
}

/// `key`, found where keys of `kind` are, as a key of that kind.
fn read_key(key: &[u8], kind: KeyKind) -> Result<Key<'_>, ViewsError> {
    let parsed = Key::parse(key)?;
    if parsed.kind() == kind {
        Ok(parsed)
    } else {
        Err(KeyError::malformed(kind, key).into())
    }
}

/// The breach record an index entry (`o/` or `k/`) under `kind` points at.
fn indexed_breach(
    views: &Views,
    key: &[u8],
    kind: KeyKind,
) -> Result<Option<BreachRecord>, ViewsError> {
    let clock = match read_key(key, kind)? {
        Key::OpenBreach { clock, .. } | Key::PairBreach { clock, .. } => clock,
        _ => return Err(KeyError::malformed(kind, key).into()),
    };
    let record_key = Key::Breach(clock).to_bytes();
    views
        .tree()
        .get(&record_key)?
        .map(|value| decode::<BreachRecord>(&record_key, &value))
        .transpose()
}

/// Scans keys under `prefix` after the `after` key suffix, keeping those
/// `keep` accepts, up to `limit`.
fn scan<T>(
    views: &Views,
    prefix: &[u8],
    after: Option<&str>,
    limit: usize,
    mut keep: impl FnMut(&[u8], &[u8]) -> Result<Option<T>, ViewsError>,
) -> Result<Page<T>, ViewsError> {
    let start = match after {
        Some(after) => {
            let mut key = prefix.to_vec();
            key.extend_from_slice(after.as_bytes());
            key.push(0);
            key
        }
        None => prefix.to_vec(),
    };
    let mut items = Vec::new();
    let mut last_key = None;
    for entry in views.tree().range(start..) {
        let (key, value) = entry?;
        if !key.starts_with(prefix) {
            break;
        }
        if items.len() == limit {
            return Ok(Page {
                items,
                next: last_key,
            });
        }
        if let Some(item) = keep(&key, &value)? {
            items.push(item);
            last_key = Some(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
    }
    Ok(Page { items, next: None })
}

impl Views {
    pub fn handoff(&self, id: &Token) -> Result<Option<HandoffView>, ViewsError> {
        let key = Key::handoff(id).to_bytes();
        self.tree().get(&key)?.map(|v| decode(&key, &v)).transpose()
    }

    /// Whether the hand-off's view was retired (closed longer than the
    /// retention): its figures are in the views, its story only in the log.
    pub fn is_retired(&self, id: &Token) -> Result<bool, ViewsError> {
        Ok(self.tree().contains_key(Key::retired(id).to_bytes())?)
    }

    /// Hand-offs in id order, filtered; `after` is the previous page's `next`.
    pub fn list_handoffs(
        &self,
        filter: &HandoffFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<HandoffView>, ViewsError> {
        scan(
            self,
            &KeyKind::Handoff.prefix(),
            after,
            limit,
            |key, value| {
                let view: HandoffView = decode(key, value)?;
                let h = &view.handoff;
                let keep = matches(&filter.supplier, &h.supplier)
                    && matches(&filter.customer, &h.customer)
                    && matches(&filter.kind, &h.kind)
                    && filter.status.is_none_or(|s| s == h.status);
                Ok(keep.then_some(view))
            },
        )
    }

    /// Breaches by policy then hand-off, filtered.
    pub fn list_breaches(
        &self,
        filter: &BreachFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<BreachRecord>, ViewsError> {
        let prefix = match &filter.policy {
            Some(policy) => Prefix::BreachesOf(policy.as_str()),
            None => Prefix::Kind(KeyKind::Breach),
        }
        .to_bytes();
        scan(self, &prefix, after, limit, |key, value| {
            let record: BreachRecord = decode(key, value)?;
            let keep = matches(&filter.supplier, &record.supplier)
                && matches(&filter.customer, &record.customer)
                && (!filter.open_only || record.stopped_at.is_none());
            Ok(keep.then_some(record))
        })
    }

    /// Open breaches, the latest deadline first: those announced (`true`)
    /// or those recorded from history and never paged (`false`), at most
    /// `limit` of them, with how many there are in all.
    pub fn open_breaches(
        &self,
        announced: bool,
        limit: usize,
    ) -> Result<(Vec<BreachRecord>, usize), ViewsError> {
        let prefix = Prefix::OpenBreaches { announced }.to_bytes();
        let mut records = Vec::new();
        let mut total = 0;
        for entry in self.tree().scan_prefix(&prefix) {
            let (key, _) = entry?;
            total += 1;
            if records.len() == limit {
                continue;
            }
            records.extend(indexed_breach(self, &key, KeyKind::OpenBreach)?);
        }
        Ok((records, total))
    }

    /// A pair's breaches whose deadline is at or after `from`: those
    /// announced (`true`) or those from history (`false`), at most `limit`.
    pub fn pair_breaches(
        &self,
        supplier: &Token,
        customer: &Token,
        announced: bool,
        from: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<BreachRecord>, ViewsError> {
        let pair = PairKey::new(supplier, customer);
        let prefix = Prefix::PairBreaches { pair, announced }.to_bytes();
        let mut start = prefix.clone();
        start.extend_from_slice(&instant_bytes(from.unwrap_or(Timestamp(i64::MIN))));
        let mut records = Vec::new();
        for entry in self.tree().range(start..) {
            let (key, _) = entry?;
            if !key.starts_with(&prefix) || records.len() == limit {
                break;
            }
            records.extend(indexed_breach(self, &key, KeyKind::PairBreach)?);
        }
        Ok(records)
    }

    /// Sum of the tallies of clocks that started in `[from, to)`, at hour
    /// granularity (`from` is rounded down to its hour, `to` up), for one
    /// promise or (`policy` `None`) all of them.
    pub fn compliance(&self, scope: &ComplianceScope) -> Result<Tallies, ViewsError> {
        let mut total = Tallies::default();
        self.each_tally(scope, |_, _, _, t| {
            total.merge(t);
            Flow::Go
        })?;
        Ok(total)
    }

    /// The same figures split into consecutive buckets of `bucketing`, oldest
    /// first; empty buckets are left out. `None` if there would be more than
    /// `limit` of them (the reading stops there).
    pub fn compliance_series(
        &self,
        scope: &ComplianceScope,
        bucketing: &Bucketing,
        limit: usize,
    ) -> Result<Option<Vec<(Timestamp, Tallies)>>, ViewsError> {
        let mut series: BTreeMap<Timestamp, Tallies> = BTreeMap::new();
        let mut over = false;
        self.each_tally(scope, |bucket, _, _, t| {
            series
                .entry(bucketing.start_of(bucket))
                .or_default()
                .merge(t);
            over = series.len() > limit;
            if over {
                Flow::Stop
            } else {
                Flow::Go
            }
        })?;
        Ok((!over).then(|| series.into_iter().collect()))
    }

    /// Calls `each(hour, supplier, customer, tallies)` for every stored tally
    /// in scope.
    fn each_tally(
        &self,
        scope: &ComplianceScope,
        mut each: impl FnMut(Timestamp, &str, &str, &Tallies) -> Flow,
    ) -> Result<(), ViewsError> {
        let from = scope.from.map(bucket_start).unwrap_or(Timestamp(i64::MIN));
        let policies: Vec<Vec<u8>> = match &scope.policy {
            Some(policy) => vec![Prefix::TalliesOf(policy.as_str()).to_bytes()],
            None => self.tally_prefixes()?,
        };
        for prefix in policies {
            let mut start = prefix.clone();
            start.extend_from_slice(&instant_bytes(from));
            for entry in self.tree().range(start..) {
                let (key, value) = entry?;
                if !key.starts_with(&prefix) {
                    break;
                }
                let Key::Tally { bucket, pair, .. } = read_key(&key, KeyKind::Tally)? else {
                    return Err(KeyError::malformed(KeyKind::Tally, &key).into());
                };
                if scope.to.is_some_and(|to| bucket >= to) {
                    break;
                }
                if !in_scope(scope, pair) {
                    continue;
                }
                let flow = each(bucket, pair.supplier, pair.customer, &decode(&key, &value)?);
                if flow == Flow::Stop {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// `a/<policy>/` of every promise with tallies.
    fn tally_prefixes(&self) -> Result<Vec<Vec<u8>>, ViewsError> {
        let mut prefixes = Vec::new();
        let all = KeyKind::Tally.prefix();
        let mut start = all.to_vec();
        while let Some(entry) = self.tree().range(start.clone()..).next() {
            let (key, _) = entry?;
            if !key.starts_with(&all) {
                break;
            }
            let Key::Tally { policy, .. } = read_key(&key, KeyKind::Tally)? else {
                return Err(KeyError::malformed(KeyKind::Tally, &key).into());
            };
            let prefix = Prefix::TalliesOf(policy).to_bytes();
            // Skip to just past this promise's keys.
            start = prefix.clone();
            start.push(0xff);
            prefixes.push(prefix);
        }
        Ok(prefixes)
    }

    /// The internal-customer matrix: every supplier x customer pair with
    /// hand-offs requested (or clocks started) in `[from, to)`.
    pub fn matrix(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<BTreeMap<(String, String), MatrixCell>, ViewsError> {
        let mut cells: BTreeMap<(String, String), MatrixCell> = BTreeMap::new();
        let scope = ComplianceScope {
            from,
            to,
            ..ComplianceScope::default()
        };
        self.each_tally(&scope, |_, s, c, t| {
            cells
                .entry((s.to_owned(), c.to_owned()))
                .or_default()
                .clocks
                .merge(t);
            Flow::Go
        })?;
        let all = KeyKind::Pair.prefix();
        let mut start = all.to_vec();
        start.extend_from_slice(&instant_bytes(
            from.map(bucket_start).unwrap_or(Timestamp(i64::MIN)),
        ));
        for entry in self.tree().range(start..) {
            let (key, value) = entry?;
            if !key.starts_with(&all) {
                break;
            }
            let Key::Pair { bucket, pair } = read_key(&key, KeyKind::Pair)? else {
                return Err(KeyError::malformed(KeyKind::Pair, &key).into());
            };
            if to.is_some_and(|to| bucket >= to) {
                break;
            }
            let tallies: PairTallies = decode(&key, &value)?;
            cells
                .entry((pair.supplier.to_owned(), pair.customer.to_owned()))
                .or_default()
                .handoffs
                .merge(&tallies);
        }
        Ok(cells)
    }

    /// Running clocks by time left (earliest deadline first), each with
    /// its hand-off.
    ///
    /// Walks the hand-offs by their earliest running deadline, a piece at a
    /// time (so the projector is never held up for long). Once `limit`
    /// clocks are found that sort before the hand-off in hand (by deadline,
    /// then hand-off), none still to come can precede them: the walk reads
    /// the views of about the rows it returns, however many hand-offs warn
    /// before them or run out at one instant.
    pub fn open_clocks(
        &self,
        filter: &HandoffFilter,
        limit: usize,
    ) -> Result<Vec<OpenClock>, ViewsError> {
        const PIECE: usize = 256;
        let by_time_left = |a: &OpenClock, b: &OpenClock| {
            (a.clock.deadline, &a.handoff.handoff_id, &a.clock.policy_id).cmp(&(
                b.clock.deadline,
                &b.handoff.handoff_id,
                &b.clock.policy_id,
            ))
        };
        let mut found: Vec<OpenClock> = Vec::new();
        let mut last = None;
        'walk: loop {
            let piece =
                self.with_timers(|timers| timers.by_deadline_after(last.as_ref(), PIECE))?;
            for (earliest, handoff) in &piece {
                if found.len() >= limit {
                    found.sort_by(by_time_left);
                    found.truncate(limit);
                    // Every hand-off still to come has no deadline before
                    // this one's earliest, and ties at one instant come in
                    // id order: none has a clock that sorts before the
                    // last kept.
                    let past = |o: &OpenClock| {
                        (o.clock.deadline, &o.handoff.handoff_id) < (*earliest, handoff)
                    };
                    if found.last().is_none_or(past) {
                        break 'walk;
                    }
                }
                let Some(view) = self.handoff(handoff)? else {
                    continue;
                };
                let h = &view.handoff;
                if matches(&filter.supplier, &h.supplier)
                    && matches(&filter.customer, &h.customer)
                    && matches(&filter.kind, &h.kind)
                {
                    for clock in &view.deadlines {
                        found.push(OpenClock {
                            clock: clock.clone(),
                            handoff: view.handoff.clone(),
                        });
                    }
                }
            }
            match piece.last() {
                Some(end) if piece.len() == PIECE => last = Some(end.clone()),
                _ => break,
            }
        }
        found.sort_by(by_time_left);
        found.truncate(limit);
        Ok(found)
    }

    /// Disruptions, by supplier then id; `active_at` keeps only those active then.
    pub fn disruptions(
        &self,
        supplier: Option<&Token>,
        active_at: Option<Timestamp>,
    ) -> Result<Vec<DisruptionView>, ViewsError> {
        let prefix = match supplier {
            Some(s) => Prefix::DisruptionsOf(s.as_str()),
            None => Prefix::Kind(KeyKind::Disruption),
        }
        .to_bytes();
        let mut out = Vec::new();
        for entry in self.tree().scan_prefix(&prefix) {
            let (key, value) = entry?;
            let view: DisruptionView = decode(&key, &value)?;
            if active_at.is_none_or(|now| view.disruption.is_active(now)) {
                out.push(view);
            }
        }
        Ok(out)
    }

    /// Signals recorded but not yet announced: (outbox key, what, record).
    /// An entry whose tag names no signal is an error, never announced as
    /// something it may not be.
    pub fn outbox(&self, limit: usize) -> Result<Vec<(Vec<u8>, Signal, BreachRecord)>, ViewsError> {
        let mut out = Vec::new();
        for entry in self
            .tree()
            .scan_prefix(KeyKind::Outbox.prefix())
            .take(limit)
        {
            let (key, value) = entry?;
            let Key::Outbox { signal, .. } = read_key(&key, KeyKind::Outbox)? else {
                return Err(KeyError::malformed(KeyKind::Outbox, &key).into());
            };
            out.push((key.to_vec(), signal, decode(&key, &value)?));
        }
        Ok(out)
    }

    /// The key of the first entry waiting in the outbox, if any: the one the
    /// announcer publishes next (a watchdog sees whether it moves).
    pub fn outbox_head(&self) -> Result<Option<Vec<u8>>, ViewsError> {
        match self.tree().scan_prefix(KeyKind::Outbox.prefix()).next() {
            Some(entry) => Ok(Some(entry?.0.to_vec())),
            None => Ok(None),
        }
    }
}
