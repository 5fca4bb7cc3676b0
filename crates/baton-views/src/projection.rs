//! Folding events and passing deadlines into the views.
//!
//! A [`Projection`] gathers the changes of a run of events in one batch and
//! commits them with the stream position of the last one, so a crash at any
//! point leaves the views either before or after the whole run: an event is
//! never half-applied, never lost and never counted twice.
//!
//! For each touched hand-off every clock is recomputed from its events, and
//! the difference to what was stored is written: compliance tallies lose the
//! old contribution and gain the new one, the timer's index follows the
//! running clocks, and the signals [`baton_domain::signal::diff`] calls for
//! are written: a clock that newly broke gets a breach record and an outbox
//! entry for the announcer, a withdrawn breach its correction.
//!
//! Time: an event is applied as of *stream time*, the latest `recorded_at`
//! the log has shown (when ingest accepted it), and every deadline that stream
//! time has passed is settled before the event that passed it. That is the
//! order in which a live projector saw them: its timer fired, then the later
//! event arrived. So a replay, however much later it runs, reaches the very
//! same views, and never pages for a clock whose stop event it simply had
//! not read yet. Live, [`Projection::advance`] moves time on by the wall
//! clock once the projector has caught up with the stream.

use baton_domain::{
    clock::{self, ClockOutcome, SlaState},
    compliance::{bucket_start, Contribution, Tallies},
    disruption::{Change, Disruption, RecordedDisruption},
    event::{EventType, RecordedEvent},
    lifecycle::{Handoff, HandoffStatus},
    signal::{self, Breach, ClockId, Signalled, Warning, Withdrawal},
    Catalog, Timestamp, Token,
};

use crate::{
    cache::Cache,
    compact,
    keys::{instant_bytes, Key, KeyError, KeyKind, Prefix},
    store::{Batch, Sealed},
    timers::{earliest_deadline, next_due},
    view::{
        Acknowledgement, BreachRecord, Cause, Correction, DisruptionView, HandoffView,
        PairContribution, PairTallies, RunningClock, Signal,
    },
    Views, ViewsError,
};

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// New to the views, and now in them.
    Applied,
    /// At or below the hand-off's last applied sequence: seen before.
    AlreadyApplied,
    /// Not applicable to what the views hold (the log should never hold
    /// such an event; ingest refuses them).
    Refused(Refusal),
    /// For a hand-off whose view was retired: it is in the log and its
    /// timeline, and moves no figure (they are final once retired).
    Retired,
}

/// Why an event does not fit the history the views hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A hand-off event its hand-off's lifecycle does not allow.
    #[error(transparent)]
    Lifecycle(#[from] baton_domain::lifecycle::LifecycleError),
    /// A disruption event its disruption's history does not allow.
    #[error(transparent)]
    Disruption(#[from] baton_domain::disruption::DisruptionError),
}

/// Changes in progress over the views.
#[derive(Debug)]
pub struct Projection<'a> {
    batch: Batch<'a>,
    /// Decoded values of this batch, encoded into it at commit.
    cache: Cache,
    catalog: &'a Catalog,
    newly_signalled: usize,
    stream_time: Timestamp,
    position: Option<u64>,
    announce_horizon: Option<std::time::Duration>,
    /// Views of hand-offs closed longer than this (by event time, as of
    /// stream time) are retired; `None`: kept for ever.
    retention: Option<std::time::Duration>,
}

/// Whether `record`, entered into `view`, could withdraw a breach: one was
/// recorded, or a running deadline had passed by the event's entry (the
/// views may not have settled it yet). Only then is the costlier check of
/// [`Projection::withdrawn_by`] made.
fn may_withdraw(view: &HandoffView, record: &RecordedEvent) -> bool {
    // History loaded by an importer withdraws nothing anyone saw.
    let history = record.envelope.backfill || is_history(view);
    let entered = record.envelope.recorded_at;
    !history && (!view.breached.is_empty() || view.deadlines.iter().any(|c| c.deadline < entered))
}

/// Whether the hand-off was loaded as history by an importer.
fn is_history(view: &HandoffView) -> bool {
    view.events.first().is_some_and(|e| e.envelope.backfill)
}

/// Every clock of a hand-off as of `now`: each covering promise's cycles,
/// in catalog order.
pub fn clocks_of(
    catalog: &Catalog,
    handoff: &Handoff,
    events: &[RecordedEvent],
    now: Timestamp,
) -> Vec<ClockOutcome> {
    // Clocks are judged from the priority the hand-off was requested at;
    // its REPRIORITIZED events change their targets as they go.
    let requested = events
        .iter()
        .map(|r| &r.event)
        .find(|e| e.event_type == EventType::Requested)
        .and_then(|e| e.priority)
        .unwrap_or(handoff.priority);
    catalog
        .policies_for(handoff)
        .flat_map(|policy| clock::evaluate(policy, requested, events, now))
        .collect()
}

impl<'a> Projection<'a> {
    pub fn new(views: &'a Views, catalog: &'a Catalog) -> Result<Projection<'a>, ViewsError> {
        let batch = Batch::new(views);
        Ok(Projection {
            stream_time: batch.stream_time()?,
            batch,
            cache: Cache::default(),
            catalog,
            newly_signalled: 0,
            position: None,
            announce_horizon: None,
            retention: None,
        })
    }

    /// Breaches whose deadline is more than `horizon` older than the stream
    /// time at which they are recorded (history being imported) go into the
    /// views and figures but are not announced. Without a horizon, every
    /// breach is announced.
    pub fn with_announce_horizon(mut self, horizon: Option<std::time::Duration>) -> Self {
        self.announce_horizon = horizon;
        self
    }

    /// Retires the views of hand-offs closed longer than `retention` ago
    /// as stream time passes (see [`Projection::retire_closed`]).
    pub fn with_retention(mut self, retention: Option<std::time::Duration>) -> Self {
        self.retention = retention;
        self
    }

    /// Settles every running clock whose deadline is before `now`, and
    /// moves stream time on to `now` (never back).
    ///
    /// Returns how many hand-offs had a deadline or warning pass.
    pub fn advance(&mut self, now: Timestamp) -> Result<usize, ViewsError> {
        let due = self.batch.due_before(now)?;
        for (at, handoff) in &due {
            if self.cache.has_handoff(&self.batch, handoff)? {
                self.refresh(handoff, now)?;
            } else {
                // An index entry without its hand-off cannot be settled: drop it.
                self.batch.set_due(handoff, Some(*at), None);
            }
        }
        if !due.is_empty() {
            self.batch.due_settled();
        }
        self.stream_time = self.stream_time.max(now);
        self.retire_closed()?;
        Ok(due.len())
    }

    /// Retires the view of every hand-off closed (by its closing event's
    /// time) more than the retention before stream time: the view and its
    /// place in the hand-off lists go; its tallies, pair figures and breach
    /// records stay; a marker says it was retired. Decided by stream time
    /// alone, so a rebuild retires the same views at the same point.
    fn retire_closed(&mut self) -> Result<(), ViewsError> {
        let Some(retention) = self.retention else {
            return Ok(());
        };
        let cutoff = self
            .stream_time
            .0
            .saturating_sub(retention.as_millis() as i64);
        let start = KeyKind::Closed.prefix();
        let mut end = start.to_vec();
        end.extend_from_slice(&instant_bytes(Timestamp(cutoff)));
        for key in self.batch.keys_in(&start, &end)? {
            let Key::Closed { handoff, .. } = Key::parse(&key)? else {
                return Err(KeyError::malformed(KeyKind::Closed, &key).into());
            };
            let id =
                Token::parse(handoff).map_err(|_| KeyError::malformed(KeyKind::Closed, &key))?;
            self.batch.delete(key);
            if let Some((view, _)) = self.cache.take_handoff(&self.batch, &id)? {
                let h = &view.handoff;
                let listed = Key::requested(view.first_supplier(), h.requested_at, &id);
                self.batch.delete(listed.to_bytes());
                self.batch
                    .set_due(&id, next_due(&view.deadlines, &view.warnings), None);
                self.batch
                    .set_deadline(&id, earliest_deadline(&view.deadlines), None);
                self.batch.put_raw(Key::retired(&id).to_bytes(), Vec::new());
                self.cache.retire_handoff(id);
            }
        }
        Ok(())
    }

    /// Breaches and corrections queued in this batch so far (each will be announced).
    pub fn newly_signalled(&self) -> usize {
        self.newly_signalled
    }

    /// Moves stream time on to `logged_at`, the time the log gives the
    /// message at stream `sequence`, settling the deadlines it passed.
    fn reach(&mut self, sequence: u64, logged_at: Timestamp) -> Result<Timestamp, ViewsError> {
        self.position = Some(self.position.unwrap_or(0).max(sequence));
        if logged_at > self.stream_time {
            self.advance(logged_at)?;
        }
        Ok(self.stream_time)
    }

    /// Folds one recorded event at stream `sequence` into the views, first
    /// settling the deadlines passed by `logged_at`: when the log recorded
    /// it (JetStream's own timestamp, never a field of the event).
    pub fn apply(
        &mut self,
        sequence: u64,
        logged_at: Timestamp,
        record: RecordedEvent,
    ) -> Result<ApplyOutcome, ViewsError> {
        let now = self.reach(sequence, logged_at)?;
        let event = &record.event;
        // The hand-off before this event, kept when the event may withdraw
        // a breach that had happened by the time it was entered.
        let mut prior = None;
        let stored = self.cache.take_handoff(&self.batch, &event.handoff_id)?;
        let mut view = match stored {
            Some((view, dirty)) if sequence <= view.last_sequence => {
                self.cache.restore_handoff(view, dirty);
                return Ok(ApplyOutcome::AlreadyApplied);
            }
            Some((mut view, dirty)) => {
                let mut handoff = view.handoff.clone();
                if let Err(e) = handoff.apply(event) {
                    self.cache.restore_handoff(view, dirty);
                    return Ok(ApplyOutcome::Refused(e.into()));
                }
                if let Some(supplier) = &event.supplier {
                    handoff.supplier = supplier.clone();
                }
                // Only a projection that retires views keeps the closing
                // index (a key each: a quarter more writes in a rebuild);
                // the retention is part of the views' identity, so changing
                // it rebuilds them with the index.
                let closes = handoff.status.is_closed() && !view.handoff.status.is_closed();
                if closes && self.retention.is_some() {
                    let closed = Key::closed(event.occurred_at, &handoff.handoff_id);
                    self.batch.put_raw(closed.to_bytes(), Vec::new());
                }
                if may_withdraw(&view, &record) {
                    prior = Some(view.handoff.clone());
                }
                view.handoff = handoff;
                view
            }
            None => match self.open_view(event)? {
                Ok(view) => view,
                Err(outcome) => return Ok(outcome),
            },
        };
        let cause = Cause::of(&record);
        let pages = !record.envelope.backfill;
        let withdrawals = match prior {
            Some(prior) if pages => self.withdrawn_by(&prior, &view, &record),
            _ => Vec::new(),
        };
        view.corrections.extend(withdrawals);
        view.events.push(compact::clock_record(record));
        if view.first_sequence == 0 {
            view.first_sequence = sequence;
        }
        view.last_sequence = sequence;
        self.recompute(view, now, Some(cause), pages)?;
        Ok(ApplyOutcome::Applied)
    }

    /// A new view for the hand-off `event` opens, or what became of the
    /// event instead: its hand-off's view was retired, or it opens none.
    fn open_view(
        &mut self,
        event: &baton_domain::event::Event,
    ) -> Result<Result<HandoffView, ApplyOutcome>, ViewsError> {
        let retired = Key::retired(&event.handoff_id).to_bytes();
        if event.event_type != EventType::Requested && self.batch.get_raw(&retired)?.is_some() {
            return Ok(Err(ApplyOutcome::Retired));
        }
        match Handoff::open(event) {
            Ok(mut handoff) => {
                compact::trim_attributes(self.catalog, &mut handoff);
                let requested =
                    Key::requested(&handoff.supplier, handoff.requested_at, &handoff.handoff_id);
                self.batch.put_raw(requested.to_bytes(), Vec::new());
                Ok(Ok(HandoffView::new(handoff)))
            }
            Err(e) => Ok(Err(ApplyOutcome::Refused(e.into()))),
        }
    }

    /// Moves the position past a stream message that is not an event.
    pub fn skip(&mut self, sequence: u64) {
        self.position = Some(self.position.unwrap_or(0).max(sequence));
    }

    /// Marks an outbox entry (`key`, as [`Views::outbox`] lists it) as
    /// announced: it leaves the outbox in this batch. A breach whose record
    /// is gone by now (a late event corrected it while it was being
    /// published) queues its correction; returns whether it did.
    ///
    /// In a batch like every other write, so it is ordered with the
    /// projection's batches and reads what they staged.
    pub fn announced(
        &mut self,
        key: &[u8],
        signal: Signal,
        record: &BreachRecord,
    ) -> Result<bool, ViewsError> {
        self.batch.delete(key.to_vec());
        let (policy, handoff) = (&record.policy_id, &record.handoff_id);
        let breach = Key::breach(policy, handoff, record.cycle).to_bytes();
        let still_breached = self.batch.get_raw(&breach)?.is_some();
        if signal == Signal::Breach && !still_breached {
            let correction = Key::outbox(Signal::Correction, policy, handoff, record.cycle);
            self.batch.put(correction.to_bytes(), record)?;
            self.newly_signalled += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// Re-evaluates a hand-off's clocks as of `now`.
    fn refresh(&mut self, handoff_id: &Token, now: Timestamp) -> Result<(), ViewsError> {
        if let Some((view, _)) = self.cache.take_handoff(&self.batch, handoff_id)? {
            self.recompute(view, now, None, true)?;
        }
        Ok(())
    }

    /// Re-evaluates every clock of `view` as of `now` and writes what
    /// changed. `cause` is the event just applied (none when time passed);
    /// `pages` is false when that event was history being loaded.
    fn recompute(
        &mut self,
        mut view: HandoffView,
        now: Timestamp,
        cause: Option<Cause>,
        pages: bool,
    ) -> Result<(), ViewsError> {
        // History loaded by an importer pages nobody, now or when its
        // deadlines pass later.
        let pages = pages && !is_history(&view);
        let handoff = &view.handoff;
        let clocks = clocks_of(self.catalog, handoff, &view.events, now);

        let contributions: Vec<Contribution> = clocks
            .iter()
            .filter_map(|c| Contribution::of(c, &handoff.supplier, &handoff.customer))
            .collect();
        if contributions != view.contributions {
            for old in &view.contributions {
                self.adjust_tally(old, false)?;
            }
            for new in &contributions {
                self.adjust_tally(new, true)?;
            }
        }

        // The timer's index: running deadlines, and warnings not yet due.
        let deadlines: Vec<RunningClock> = clocks.iter().filter_map(RunningClock::of).collect();
        let warnings: Vec<(Token, Timestamp)> = clocks
            .iter()
            .filter_map(|c| c.running_warning().map(|w| (c.policy_id.clone(), w)))
            .collect();
        self.batch.set_due(
            &handoff.handoff_id,
            next_due(&view.deadlines, &view.warnings),
            next_due(&deadlines, &warnings),
        );
        self.batch.set_deadline(
            &handoff.handoff_id,
            earliest_deadline(&view.deadlines),
            earliest_deadline(&deadlines),
        );

        let signals = signal::diff(
            Signalled {
                breached: &view.breached,
                warned: &view.warned,
            },
            &clocks,
        );
        let breached = self.record_breaches(&view, &signals.breaches, now, pages)?;
        self.withdraw_breaches(&view, &signals.withdrawn, cause.as_ref())?;
        self.record_warnings(&view, &signals.new_warnings, now, pages)?;
        let warned = signals.warned;
        let disruptions = self.reflag_disruptions(&view, &clocks)?;
        let pair = self.recount_pair(&view, !disruptions.is_empty())?;

        view.contributions = contributions;
        view.deadlines = deadlines;
        view.warnings = warnings;
        view.breached = breached;
        view.warned = warned;
        view.disruptions = disruptions;
        view.pair = Some(pair);
        self.cache.put_handoff(view);
        Ok(())
    }

    /// Records every breach of `view` (a breach record, its index entries,
    /// and an outbox entry if it is new and pages); returns their ids.
    fn record_breaches(
        &mut self,
        view: &HandoffView,
        breaches: &[Breach<'_>],
        now: Timestamp,
        pages: bool,
    ) -> Result<Vec<ClockId>, ViewsError> {
        let handoff = &view.handoff;
        let id = &handoff.handoff_id;
        let mut breached = Vec::new();
        for &Breach {
            clock: c,
            deadline,
            is_new,
        } in breaches
        {
            let mut record = self.record(handoff, c, deadline);
            if record.escalate_to.is_some() {
                record.acknowledged = Acknowledgement::among(&view.events, deadline);
            }
            let key = Key::breach(&c.policy_id, id, c.cycle).to_bytes();
            let stored = match is_new {
                false => self.batch.get::<BreachRecord>(&key)?,
                true => None,
            };
            let newly_acknowledged = record.acknowledged.is_some()
                && stored.as_ref().is_none_or(|s| s.acknowledged.is_none());
            record.announce = if is_new {
                pages && signal::within_horizon(deadline, now, self.announce_horizon)
            } else {
                stored.as_ref().is_none_or(|r| r.announce)
            };
            self.reindex_breach(stored.as_ref(), Some(&record));
            if is_new && record.announce {
                let outbox = Key::outbox(Signal::Breach, &c.policy_id, id, c.cycle);
                self.batch.put(outbox.to_bytes(), &record)?;
                self.newly_signalled += 1;
            }
            if newly_acknowledged && record.announce {
                let outbox = Key::outbox(Signal::Acknowledged, &c.policy_id, id, c.cycle);
                self.batch.put(outbox.to_bytes(), &record)?;
                self.newly_signalled += 1;
            }
            self.batch.put(key, &record)?;
            breached.push(signal::clock_id(c));
        }
        Ok(breached)
    }

    /// Drops the `withdrawn` breaches of `view` (by event time the promise
    /// held after all: a late event). One not announced yet never will be;
    /// one announced is corrected, naming `cause`.
    fn withdraw_breaches(
        &mut self,
        view: &HandoffView,
        withdrawn: &[Withdrawal<'_>],
        cause: Option<&Cause>,
    ) -> Result<(), ViewsError> {
        let id = &view.handoff.handoff_id;
        for Withdrawal {
            id: (policy, cycle),
            now: now_clock,
        } in withdrawn
        {
            let key = Key::breach(policy, id, *cycle).to_bytes();
            let stored = self.batch.get::<BreachRecord>(&key)?;
            let pending = Key::outbox(Signal::Breach, policy, id, *cycle).to_bytes();
            let unannounced = self.batch.get::<BreachRecord>(&pending)?.is_some();
            if unannounced {
                self.batch.delete(pending);
            }
            self.reindex_breach(stored.as_ref(), None);
            if let Some(mut record) = stored.filter(|r| r.announce && !unannounced) {
                record.stopped_at = now_clock.and_then(|c| c.stopped_at);
                record.elapsed = now_clock.filter(|c| !c.is_open()).map(|c| c.elapsed);
                record.cause = cause.cloned();
                let correction = Key::outbox(Signal::Correction, policy, id, *cycle);
                self.batch.put(correction.to_bytes(), &record)?;
                self.newly_signalled += 1;
            }
            self.batch.delete(key);
        }
        Ok(())
    }

    /// Announces each new warning of `view` that is live and pages.
    fn record_warnings(
        &mut self,
        view: &HandoffView,
        warnings: &[Warning<'_>],
        now: Timestamp,
        pages: bool,
    ) -> Result<(), ViewsError> {
        let handoff = &view.handoff;
        for &Warning {
            clock: c,
            warn_at,
            is_live,
        } in warnings
        {
            if is_live && pages && signal::within_horizon(warn_at, now, self.announce_horizon) {
                let deadline = c.deadline.unwrap_or(warn_at);
                let record = self.record(handoff, c, deadline);
                let key = Key::outbox(Signal::Warning, &c.policy_id, &handoff.handoff_id, c.cycle);
                self.batch.put(key.to_bytes(), &record)?;
                self.newly_signalled += 1;
            }
        }
        Ok(())
    }

    /// The disruptions `view` now falls into, with each disruption's counts
    /// moved off what it fell into before.
    fn reflag_disruptions(
        &mut self,
        view: &HandoffView,
        clocks: &[ClockOutcome],
    ) -> Result<Vec<(Token, bool)>, ViewsError> {
        let disruptions = self.disruptions_of(view, clocks)?;
        if disruptions != view.disruptions {
            let supplier = view.first_supplier().clone();
            for (d, failed) in &view.disruptions {
                self.adjust_disruption(&supplier, d, *failed, false)?;
            }
            for (d, failed) in &disruptions {
                self.adjust_disruption(&supplier, d, *failed, true)?;
            }
        }
        Ok(disruptions)
    }

    /// What `view` now counts as in its pair's figures, moved off what it
    /// counted as before.
    fn recount_pair(
        &mut self,
        view: &HandoffView,
        disrupted: bool,
    ) -> Result<PairContribution, ViewsError> {
        let handoff = &view.handoff;
        let pair = PairContribution {
            supplier: handoff.supplier.clone(),
            customer: handoff.customer.clone(),
            bucket: bucket_start(handoff.requested_at),
            rejected: handoff.status == HandoffStatus::Rejected,
            disrupted,
            rating: handoff.rating,
            late_entry_corrections: view
                .corrections
                .iter()
                .filter(|c| c.cause.by_supplier)
                .count() as u32,
        };
        if view.pair.as_ref() != Some(&pair) {
            if let Some(old) = &view.pair {
                self.adjust_pair(old, false)?;
            }
            self.adjust_pair(&pair, true)?;
        }
        Ok(pair)
    }

    /// The breaches `record` withdraws: clocks of `view` (its events before
    /// `record`, the hand-off `prior` to it) breached as of the event's
    /// entry and no longer breached with it, each a [`Correction`] caused
    /// by it. Decided by the hand-off's own events and their times alone,
    /// so every replica and every replay records the same.
    fn withdrawn_by(
        &self,
        prior: &Handoff,
        view: &HandoffView,
        record: &RecordedEvent,
    ) -> Vec<Correction> {
        let entered = record.envelope.recorded_at;
        let before = clocks_of(self.catalog, prior, &view.events, entered);
        let mut with = view.events.clone();
        with.push(record.clone());
        let after = clocks_of(self.catalog, &view.handoff, &with, entered);
        before
            .iter()
            .filter(|b| b.state == SlaState::Breached)
            .filter(|b| {
                !after.iter().any(|a| {
                    a.policy_id == b.policy_id
                        && a.cycle == b.cycle
                        && a.state == SlaState::Breached
                })
            })
            .filter_map(|b| {
                Some(Correction {
                    policy_id: b.policy_id.clone(),
                    cycle: b.cycle,
                    deadline: b.deadline?,
                    corrected_at: entered,
                    cause: Cause::of(record),
                })
            })
            .collect()
    }

    /// Keeps the breach indexes in step with one breach record, `was` as
    /// stored before and `now` as it will be (`None`: gone).
    fn reindex_breach(&mut self, was: Option<&BreachRecord>, now: Option<&BreachRecord>) {
        let keys = |r: Option<&BreachRecord>| match r {
            Some(r) => vec![
                Key::open_breach(r).map(|k| k.to_bytes()),
                Some(Key::pair_breach(r).to_bytes()),
            ],
            None => Vec::new(),
        };
        let (old, new) = (keys(was), keys(now));
        for key in old.iter().flatten() {
            if !new.iter().flatten().any(|k| k == key) {
                self.batch.delete(key.clone());
            }
        }
        for key in new.into_iter().flatten() {
            if !old.iter().flatten().any(|k| *k == key) {
                self.batch.put_raw(key, Vec::new());
            }
        }
    }

    /// A breach (or warning) record of clock `c`.
    fn record(&self, handoff: &Handoff, c: &ClockOutcome, deadline: Timestamp) -> BreachRecord {
        BreachRecord {
            handoff_id: handoff.handoff_id.clone(),
            policy_id: c.policy_id.clone(),
            kind: handoff.kind.clone(),
            supplier: c
                .supplier
                .clone()
                .unwrap_or_else(|| handoff.supplier.clone()),
            customer: handoff.customer.clone(),
            priority: handoff.priority,
            deadline,
            stopped_at: c.stopped_at,
            announce: true,
            cycle: c.cycle,
            target: c.target,
            elapsed: (!c.is_open()).then_some(c.elapsed),
            warn_at: c.warn_at,
            escalate_to: self
                .catalog
                .policy(c.policy_id.as_str())
                .and_then(|p| p.escalate_to.clone()),
            cause: None,
            acknowledged: None,
        }
    }

    /// The disruptions a hand-off was requested into, each with whether one
    /// of its promises broke before the disruption was announced.
    fn disruptions_of(
        &mut self,
        view: &HandoffView,
        clocks: &[ClockOutcome],
    ) -> Result<Vec<(Token, bool)>, ViewsError> {
        let supplier = view.first_supplier();
        let h = &view.handoff;
        let mut flagged = Vec::new();
        for key in self.cache.disruption_keys(&self.batch, supplier)? {
            let Some(d) = self.batch.get::<DisruptionView>(key)? else {
                continue;
            };
            let d = d.disruption;
            if d.covers(supplier, &h.kind, &h.attributes, h.requested_at) {
                let failed_before = d.announced_at.is_some_and(|announced| {
                    clocks.iter().any(|c| {
                        c.state == SlaState::Breached && c.deadline.is_some_and(|at| at < announced)
                    })
                });
                flagged.push((d.disruption_id, failed_before));
            }
        }
        Ok(flagged)
    }

    fn adjust_disruption(
        &mut self,
        supplier: &Token,
        disruption: &Token,
        failed_before: bool,
        add: bool,
    ) -> Result<(), ViewsError> {
        let key = Key::disruption(supplier, disruption).to_bytes();
        let Some(mut view) = self.batch.get::<DisruptionView>(&key)? else {
            return Ok(());
        };
        let change = |n: u64, by: bool| match (add, by) {
            (_, false) => n,
            (true, true) => n + 1,
            (false, true) => n.saturating_sub(1),
        };
        view.affected = change(view.affected, true);
        view.failed_before_announcement = change(view.failed_before_announcement, failed_before);
        self.batch.put(key, &view)
    }

    fn adjust_pair(&mut self, c: &PairContribution, add: bool) -> Result<(), ViewsError> {
        let tallies = self.cache.pair_mut(&self.batch, Key::pair(c).to_bytes())?;
        if add {
            tallies.add(c);
        } else {
            tallies.remove(c);
        }
        if tallies.handoffs == 0 {
            // As if deleted: deleted at commit, and read back empty.
            *tallies = PairTallies::default();
        }
        Ok(())
    }

    /// Folds one recorded disruption event at stream `sequence` into the
    /// views, and re-flags every hand-off its span now covers or no longer
    /// covers.
    pub fn apply_disruption(
        &mut self,
        sequence: u64,
        logged_at: Timestamp,
        record: RecordedDisruption,
    ) -> Result<ApplyOutcome, ViewsError> {
        let now = self.reach(sequence, logged_at)?;
        let event = &record.event;
        let key = Key::disruption(&event.supplier, &event.disruption_id).to_bytes();
        let stored: Option<DisruptionView> = self.batch.get(&key)?;
        if stored.as_ref().is_some_and(|v| sequence <= v.last_sequence) {
            return Ok(ApplyOutcome::AlreadyApplied);
        }
        let current = stored.as_ref().map(|v| &v.disruption);
        let updated = match Disruption::apply(current, &record) {
            Err(e) => return Ok(ApplyOutcome::Refused(e.into())),
            Ok(Change::Duplicate) => return Ok(ApplyOutcome::AlreadyApplied),
            Ok(Change::Applied(d)) => d,
        };
        // The span to re-examine: before and after this event.
        let from = current.map_or(updated.started_at, |c| c.started_at.min(updated.started_at));
        let to = match (current.map(|c| c.ended_at), updated.ended_at) {
            (Some(None), _) | (_, None) => None,
            (Some(Some(a)), Some(b)) => Some(a.max(b)),
            (None, Some(b)) => Some(b),
        };
        let view = DisruptionView {
            disruption: updated,
            last_sequence: sequence,
            affected: stored.as_ref().map_or(0, |v| v.affected),
            failed_before_announcement: stored.as_ref().map_or(0, |v| v.failed_before_announcement),
        };
        self.batch.put(key, &view)?;
        self.cache.forget_disruptions();
        self.refresh_requested(&event.supplier, from, to, now)?;
        Ok(ApplyOutcome::Applied)
    }

    /// Re-evaluates, as of `now`, every hand-off first requested from
    /// `supplier` in `[from, to)` (`to` `None`: from `from` on).
    fn refresh_requested(
        &mut self,
        supplier: &Token,
        from: Timestamp,
        to: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), ViewsError> {
        let prefix = Prefix::RequestedOf(supplier.as_str()).to_bytes();
        let mut start = prefix.clone();
        start.extend_from_slice(&instant_bytes(from));
        let mut end = prefix;
        match to {
            Some(to) => end.extend_from_slice(&instant_bytes(to)),
            None => end.push(0xff),
        }
        for key in self.batch.keys_in(&start, &end)? {
            let Key::Requested { handoff, .. } = Key::parse(&key)? else {
                return Err(KeyError::malformed(KeyKind::Requested, &key).into());
            };
            let handoff =
                Token::parse(handoff).map_err(|_| KeyError::malformed(KeyKind::Requested, &key))?;
            self.refresh(&handoff, now)?;
        }
        Ok(())
    }

    fn adjust_tally(&mut self, c: &Contribution, add: bool) -> Result<(), ViewsError> {
        let tallies = self
            .cache
            .tally_mut(&self.batch, Key::tally(c).to_bytes())?;
        if add {
            tallies.add(c);
        } else {
            tallies.remove(c);
        }
        if tallies.is_empty() {
            // As if deleted: deleted at commit, and read back empty.
            *tallies = Tallies::default();
        }
        Ok(())
    }

    /// Commits every change atomically, with the stream position of the
    /// last applied event and the stream time.
    pub fn commit(self) -> Result<(), ViewsError> {
        let views = self.batch.views();
        if let Some(sealed) = self.seal()? {
            views.stage(&sealed)?;
            views.land(sealed)?;
        }
        Ok(())
    }

    /// Every change, with the stream position of the last applied event and
    /// the stream time, ready to be applied atomically (see [`Sealed`]);
    /// `None` if there is nothing to apply.
    pub fn seal(mut self) -> Result<Option<Sealed>, ViewsError> {
        self.cache.write(&mut self.batch)?;
        if self.batch.is_empty() && self.position.is_none() {
            return Ok(None);
        }
        Ok(Some(self.batch.seal(self.position, self.stream_time)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use baton_domain::{
        event::{Envelope, Event, EventType, Priority},
        lifecycle::HandoffStatus,
    };
    use proptest::prelude::*;

    use super::*;
    use crate::{query::BreachFilter, Discarded, HandoffFilter, Opened};

    /// The tests apply each event as of its `recorded_at`, as JetStream
    /// stamps a message when ingest publishes it.
    trait ApplyRecorded {
        fn apply_recorded(
            &mut self,
            sequence: u64,
            record: RecordedEvent,
        ) -> Result<ApplyOutcome, ViewsError>;
        fn disrupt_recorded(
            &mut self,
            sequence: u64,
            record: RecordedDisruption,
        ) -> Result<ApplyOutcome, ViewsError>;
    }

    impl ApplyRecorded for Projection<'_> {
        fn apply_recorded(
            &mut self,
            sequence: u64,
            record: RecordedEvent,
        ) -> Result<ApplyOutcome, ViewsError> {
            let at = record.envelope.recorded_at;
            self.apply(sequence, at, record)
        }

        fn disrupt_recorded(
            &mut self,
            sequence: u64,
            record: RecordedDisruption,
        ) -> Result<ApplyOutcome, ViewsError> {
            let at = record.recorded_at;
            self.apply_disruption(sequence, at, record)
        }
    }

    const MIN: i64 = 60_000;

    /// Late entries up to an hour still count by their own time here, so
    /// the tests of corrections can enter an acknowledgement 30 minutes late.
    fn catalog() -> Catalog {
        Catalog::from_json(
            r#"{"departments": [{"id": "engineering", "name": "E"}, {"id": "ward-5", "name": "W5"}, {"id": "ward-6", "name": "W6"}],
                "kinds": ["repair"], "max_entry_lag": "1h",
                "promises": [{"id": "response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
                              "targets": {"routine": "30m"}}]}"#,
        )
        .expect("catalog")
    }

    fn t(s: &str) -> Token {
        Token::parse(s).expect("token")
    }

    /// An event recorded at `version` the moment it happened.
    fn event(
        handoff: &str,
        event_type: EventType,
        at: i64,
        version: u64,
        customer: &str,
    ) -> RecordedEvent {
        let event = Event {
            event_id: format!("{handoff}-{version}"),
            handoff_id: t(handoff),
            event_type,
            occurred_at: Timestamp(at),
            kind: Some(t("repair")),
            supplier: Some(t("engineering")),
            customer: Some(t(customer)),
            priority: Some(Priority::Routine),
            actor: String::new(),
            attributes: BTreeMap::new(),
            rating: None,
        };
        RecordedEvent {
            event,
            envelope: Envelope {
                version,
                recorded_at: Timestamp(at),
                sent_by: String::new(),
                backfill: false,
            },
        }
    }

    fn scope(
        policy: &str,
        supplier: Option<&Token>,
        customer: Option<&Token>,
    ) -> crate::ComplianceScope {
        crate::ComplianceScope {
            policy: Some(t(policy)),
            supplier: supplier.cloned(),
            customer: customer.cloned(),
            ..Default::default()
        }
    }

    /// Marks an outbox entry announced as the announcer does: in a batch.
    fn announced(
        views: &Views,
        catalog: &Catalog,
        key: &[u8],
        signal: Signal,
        record: &BreachRecord,
    ) -> bool {
        let mut p = Projection::new(views, catalog).expect("projection");
        let queued = p.announced(key, signal, record).expect("announced");
        p.commit().expect("commit");
        queued
    }

    fn open_views(catalog: &Catalog) -> (tempfile::TempDir, Views) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (views, opened) = Views::open(dir.path(), catalog.version()).expect("open");
        assert!(matches!(opened, Opened::Empty), "{opened:?}");
        (dir, views)
    }

    /// A day's retention: h1 closes at 50 min, h2 stays open; once stream
    /// time passes a day after h1 closed, h1's view and its place in the
    /// lists go while every figure stays; its late rating moves nothing;
    /// and the same events in one batch (a rebuild) store the same.
    #[test]
    fn retired_views_keep_their_figures_and_take_no_late_event() {
        const DAY: i64 = 24 * 60 * MIN;
        let catalog = catalog();
        let retention = Some(std::time::Duration::from_millis(DAY as u64));
        let mut rated = event(
            "h1",
            EventType::Rated,
            DAY + 2 * 60 * MIN + 10 * MIN,
            4,
            "ward-5",
        );
        rated.event.rating = Some(baton_domain::event::Rating {
            score: 1,
            comment: String::new(),
        });
        let events = [
            event("h1", EventType::Requested, 0, 1, "ward-5"),
            event("h2", EventType::Requested, 10 * MIN, 1, "ward-6"),
            event("h1", EventType::Acknowledged, 45 * MIN, 2, "ward-5"),
            event("h1", EventType::Completed, 50 * MIN, 3, "ward-5"),
            event("h3", EventType::Requested, DAY + 2 * 60 * MIN, 1, "ward-5"),
            event(
                "h3",
                EventType::Acknowledged,
                DAY + 2 * 60 * MIN + 5 * MIN,
                2,
                "ward-5",
            ),
            rated,
        ];
        let figures = |views: &Views| {
            let all = views
                .compliance(&scope("response", None, None))
                .expect("compliance");
            let breaches = views
                .list_breaches(&BreachFilter::default(), None, 10)
                .expect("breaches")
                .items;
            let matrix = views.matrix(None, None).expect("matrix");
            (all, breaches, format!("{matrix:?}"))
        };
        // Event by event, figures after each, with and without retention.
        let run = |retention| {
            let (dir, views) = open_views(&catalog);
            let mut outcomes = Vec::new();
            let mut after = Vec::new();
            for (i, e) in events.iter().enumerate() {
                let mut p = Projection::new(&views, &catalog)
                    .expect("projection")
                    .with_retention(retention);
                outcomes.push(p.apply_recorded(i as u64 + 1, e.clone()).expect("apply"));
                p.commit().expect("commit");
                after.push(figures(&views));
            }
            (dir, views, outcomes, after)
        };
        let (_kept_dir, _, _, kept) = run(None);
        let (_dir, views, outcomes, after) = run(retention);
        assert_eq!(outcomes[5], ApplyOutcome::Applied);
        assert_eq!(
            outcomes[6],
            ApplyOutcome::Retired,
            "the late rating moves nothing"
        );
        assert_eq!(views.handoff(&t("h1")).expect("read"), None);
        assert!(views.is_retired(&t("h1")).expect("read"));
        let indexed = |views: &Views, kind: &[u8], id: &[u8]| {
            let dump = views.dump().expect("dump");
            dump.iter()
                .any(|(k, _)| k.starts_with(kind) && k.ends_with(id))
        };
        assert!(
            !indexed(&views, b"q/", b"h1"),
            "no longer in the requested-at index"
        );
        assert!(indexed(&views, b"q/", b"h2"));
        assert!(
            !indexed(&views, b"c/", b"h1"),
            "no longer waiting to be retired"
        );
        assert!(
            views.handoff(&t("h2")).expect("read").is_some(),
            "open: kept"
        );
        assert!(!views.is_retired(&t("h2")).expect("read"));
        let listed: Vec<String> = views
            .list_handoffs(&HandoffFilter::default(), None, 10)
            .expect("list")
            .items
            .iter()
            .map(|v| v.handoff.handoff_id.to_string())
            .collect();
        assert_eq!(listed, ["h2", "h3"]);
        assert_eq!(after[4], kept[4], "retiring h1 changed no figure");
        assert_eq!(after[5], kept[5]);
        assert_eq!(after[6], after[5], "its late rating changed no figure");
        assert_ne!(kept[6], kept[5], "kept, the rating would have counted");

        let (_dir, rebuilt) = open_views(&catalog);
        let mut p = Projection::new(&rebuilt, &catalog)
            .expect("projection")
            .with_retention(retention);
        for (i, e) in events.iter().enumerate() {
            p.apply_recorded(i as u64 + 1, e.clone()).expect("apply");
        }
        p.commit().expect("commit");
        assert_eq!(rebuilt.dump().expect("dump"), views.dump().expect("dump"));
    }

    #[test]
    fn met_and_breached_clocks_are_tallied_and_listed() {
        let catalog = catalog();
        let (_dir, views) = open_views(&catalog);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(1, event("h1", EventType::Requested, 0, 1, "ward-5"))
            .expect("apply");
        p.apply_recorded(
            2,
            event("h1", EventType::Acknowledged, 10 * MIN, 2, "ward-5"),
        )
        .expect("apply");
        p.apply_recorded(3, event("h2", EventType::Requested, 0, 1, "ward-6"))
            .expect("apply");
        p.apply_recorded(
            4,
            event("h2", EventType::Acknowledged, 45 * MIN, 2, "ward-6"),
        )
        .expect("apply");
        assert_eq!(p.newly_signalled(), 1);
        p.commit().expect("commit");

        assert_eq!(views.position().expect("position"), 4);
        let all = views
            .compliance(&scope("response", None, None))
            .expect("compliance");
        assert_eq!(
            (all.met, all.breached, all.open, all.compliance()),
            (1, 1, 0, 0.5)
        );
        let p50 = all.durations.quantile(0.5).expect("p50").as_secs_f64();
        assert!((p50 - 600.0).abs() <= 6.0, "{p50}");
        let ward6 = views
            .compliance(&scope("response", None, Some(&t("ward-6"))))
            .expect("compliance");
        assert_eq!((ward6.met, ward6.breached), (0, 1));

        let breaches = views
            .list_breaches(&BreachFilter::default(), None, 10)
            .expect("breaches");
        assert_eq!(breaches.items.len(), 1);
        assert_eq!(breaches.items[0].handoff_id, t("h2"));
        assert_eq!(breaches.items[0].deadline, Timestamp(30 * MIN));
        assert_eq!(breaches.items[0].stopped_at, Some(Timestamp(45 * MIN)));
        assert_eq!(views.outbox(10).expect("outbox").len(), 1);
        let h1 = views.handoff(&t("h1")).expect("read").expect("h1");
        assert_eq!(h1.handoff.status, HandoffStatus::Acknowledged);
        assert_eq!(h1.events.len(), 2);
    }

    #[test]
    fn a_passing_deadline_breaches_a_running_clock_once() {
        let catalog = catalog();
        let (_dir, views) = open_views(&catalog);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(1, event("h1", EventType::Requested, 0, 1, "ward-5"))
            .expect("apply");
        p.commit().expect("commit");
        assert_eq!(
            views.next_deadline().expect("deadline"),
            Some(Timestamp(30 * MIN))
        );
        let mut p = Projection::new(&views, &catalog).expect("projection");
        assert_eq!(p.advance(Timestamp(30 * MIN)).expect("advance"), 0);
        p.commit().expect("commit");
        let open = views.compliance(&scope("response", None, None)).expect("c");
        assert_eq!((open.open, open.breached), (1, 0));

        let mut p = Projection::new(&views, &catalog).expect("projection");
        assert_eq!(p.advance(Timestamp(30 * MIN + 1)).expect("advance"), 1);
        assert_eq!(p.newly_signalled(), 1);
        p.commit().expect("commit");
        assert_eq!(views.next_deadline().expect("deadline"), None);
        let late = views.compliance(&scope("response", None, None)).expect("c");
        assert_eq!((late.open, late.breached), (0, 1));
        let open_breaches = BreachFilter {
            open_only: true,
            ..Default::default()
        };
        assert_eq!(
            views
                .list_breaches(&open_breaches, None, 10)
                .expect("b")
                .items
                .len(),
            1
        );

        // The acknowledgement comes, late: still one breach, now closed.
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(
            2,
            event("h1", EventType::Acknowledged, 50 * MIN, 2, "ward-5"),
        )
        .expect("apply");
        assert_eq!(p.newly_signalled(), 0);
        p.commit().expect("commit");
        assert!(views
            .list_breaches(&open_breaches, None, 10)
            .expect("b")
            .items
            .is_empty());
        let done = views.compliance(&scope("response", None, None)).expect("c");
        assert_eq!(
            (done.open, done.breached, done.durations.count()),
            (0, 1, 1)
        );
    }

    #[test]
    fn a_late_stop_after_the_announcement_queues_a_correction_once() {
        let catalog = catalog();
        let (_dir, views) = open_views(&catalog);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(1, event("h1", EventType::Requested, 0, 1, "ward-5"))
            .expect("apply");
        p.advance(Timestamp(31 * MIN)).expect("advance");
        p.commit().expect("commit");
        let outbox = views.outbox(10).expect("outbox");
        assert_eq!(outbox.len(), 1);
        let (key, signal, record) = &outbox[0];
        assert_eq!(*signal, Signal::Breach);
        assert!(
            !announced(&views, &catalog, key, *signal, record),
            "still breached: no correction"
        );

        // Recorded at 40 min, but it happened at 10 min: the promise was kept.
        let mut late = event("h1", EventType::Acknowledged, 10 * MIN, 2, "ward-5");
        late.envelope.recorded_at = Timestamp(40 * MIN);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(2, late).expect("apply");
        assert_eq!(p.newly_signalled(), 1);
        p.commit().expect("commit");
        let outbox = views.outbox(10).expect("outbox");
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].1, Signal::Correction);
        assert_eq!(outbox[0].2.stopped_at, Some(Timestamp(10 * MIN)));
        assert!(views
            .list_breaches(&BreachFilter::default(), None, 10)
            .expect("b")
            .items
            .is_empty());
        let c = views.compliance(&scope("response", None, None)).expect("c");
        assert_eq!((c.met, c.breached), (1, 0));
    }

    #[test]
    fn a_correction_names_its_cause_and_the_supplier_s_own_late_entries_are_counted() {
        let catalog = catalog();
        let (_dir, views) = open_views(&catalog);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(1, event("h1", EventType::Requested, 0, 1, "ward-5"))
            .expect("apply");
        p.apply_recorded(2, event("h2", EventType::Requested, 0, 1, "ward-6"))
            .expect("apply");
        p.advance(Timestamp(31 * MIN)).expect("advance");
        p.commit().expect("commit");
        for (key, signal, record) in views.outbox(10).expect("outbox") {
            announced(&views, &catalog, &key, signal, &record);
        }
        // The supplier acknowledges h1 late (within the hour's bound); the
        // ward cancels h2 late, dated before its deadline.
        let mut ack = event("h1", EventType::Acknowledged, 10 * MIN, 2, "ward-5");
        ack.envelope.recorded_at = Timestamp(40 * MIN);
        ack.envelope.sent_by = "engineering-desk".into();
        let mut cancel = event("h2", EventType::Cancelled, 20 * MIN, 2, "ward-6");
        cancel.envelope.recorded_at = Timestamp(41 * MIN);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(3, ack).expect("apply");
        p.apply_recorded(4, cancel).expect("apply");
        p.commit().expect("commit");

        let outbox = views.outbox(10).expect("outbox");
        let causes: Vec<_> = outbox
            .iter()
            .map(|(_, signal, r)| (*signal, r.cause.clone().expect("a cause")))
            .collect();
        assert_eq!(causes.len(), 2);
        let (signal, cause) = &causes[0];
        assert_eq!(*signal, Signal::Correction);
        assert_eq!(
            (
                cause.event_type,
                cause.sent_by.as_str(),
                cause.entry_lag,
                cause.by_supplier
            ),
            (
                EventType::Acknowledged,
                "engineering-desk",
                std::time::Duration::from_secs(30 * 60),
                true
            )
        );
        assert!(!causes[1].1.by_supplier, "the customer's cancellation");
        let h1 = views.handoff(&t("h1")).expect("read").expect("h1");
        assert_eq!(h1.corrections.len(), 1);
        assert_eq!(h1.corrections[0].corrected_at, Timestamp(40 * MIN));
        let matrix = views.matrix(None, None).expect("matrix");
        let late: Vec<_> = matrix
            .iter()
            .map(|((_, customer), cell)| (customer.clone(), cell.handoffs.late_entry_corrections))
            .collect();
        assert_eq!(late, [("ward-5".into(), 1), ("ward-6".into(), 0)]);
    }

    #[test]
    fn open_breaches_are_indexed_newest_first_and_history_apart() {
        let catalog = catalog();
        let (_dir, views) = open_views(&catalog);
        let mut p = Projection::new(&views, &catalog)
            .expect("projection")
            .with_announce_horizon(Some(std::time::Duration::from_secs(3600)));
        // 1971, loaded as history by an importer: never announced.
        let year = 365 * 24 * 60 * MIN;
        for n in 0..20 {
            let mut old = event(
                &format!("old-{n}"),
                EventType::Requested,
                year + n * MIN,
                1,
                "ward-5",
            );
            old.envelope.recorded_at = Timestamp(60 * year);
            old.envelope.backfill = true;
            p.apply_recorded(n as u64 + 1, old).expect("apply");
        }
        let now = 60 * year;
        for (n, at) in [(0, now - 40 * MIN), (1, now - 35 * MIN)] {
            p.apply_recorded(
                100 + n,
                event(&format!("live-{n}"), EventType::Requested, at, 1, "ward-5"),
            )
            .expect("apply");
        }
        p.commit().expect("commit");
        let (live, total) = views.open_breaches(true, 10).expect("live");
        let ids: Vec<_> = live.iter().map(|r| r.handoff_id.to_string()).collect();
        assert_eq!(
            (ids, total),
            (vec!["live-1".to_owned(), "live-0".to_owned()], 2)
        );
        let (history, total) = views.open_breaches(false, 3).expect("history");
        assert_eq!((history.len(), total), (3, 20));
        assert_eq!(history[0].handoff_id.as_str(), "old-19", "newest first");
        let pair = views
            .pair_breaches(
                &t("engineering"),
                &t("ward-5"),
                true,
                Some(Timestamp(now - 60 * MIN)),
                10,
            )
            .expect("pair");
        assert_eq!(pair.len(), 2);

        // Acknowledged late: no longer open, still the pair's breach.
        let mut p = Projection::new(&views, &catalog).expect("projection");
        let mut ack = event("live-1", EventType::Acknowledged, now, 2, "ward-5");
        ack.envelope.recorded_at = Timestamp(now);
        p.apply_recorded(200, ack).expect("apply");
        p.commit().expect("commit");
        let (live, total) = views.open_breaches(true, 10).expect("live");
        assert_eq!((live.len(), total), (1, 1));
        let pair = views
            .pair_breaches(&t("engineering"), &t("ward-5"), true, None, 10)
            .expect("pair");
        assert_eq!(pair.len(), 2);
    }

    #[test]
    fn history_loaded_by_an_importer_pages_nobody() {
        let catalog = catalog();
        let (_dir, views) = open_views(&catalog);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        let mut old = event("h1", EventType::Requested, 0, 1, "ward-5");
        old.envelope.backfill = true;
        p.apply_recorded(1, old).expect("apply");
        p.apply_recorded(2, event("h2", EventType::Requested, 0, 1, "ward-5"))
            .expect("apply");
        p.advance(Timestamp(31 * MIN)).expect("advance");
        p.commit().expect("commit");
        let announced: Vec<_> = views
            .outbox(10)
            .expect("outbox")
            .into_iter()
            .map(|(_, _, r)| r.handoff_id.to_string())
            .collect();
        assert_eq!(
            announced,
            ["h2"],
            "the backfilled breach is recorded, not paged"
        );
        let listed = views
            .list_breaches(&BreachFilter::default(), None, 10)
            .expect("breaches")
            .items;
        assert_eq!(listed.len(), 2);
    }

    #[test]
    fn a_breach_corrected_while_being_announced_still_gets_its_correction() {
        let catalog = catalog();
        let (_dir, views) = open_views(&catalog);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(1, event("h1", EventType::Requested, 0, 1, "ward-5"))
            .expect("apply");
        p.advance(Timestamp(31 * MIN)).expect("advance");
        p.commit().expect("commit");
        let (key, signal, record) = views.outbox(10).expect("outbox").remove(0);
        // The announcer is publishing it when the late stop lands: the
        // projection drops the pending entry, thinking it unannounced...
        let mut late = event("h1", EventType::Acknowledged, 10 * MIN, 2, "ward-5");
        late.envelope.recorded_at = Timestamp(40 * MIN);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(2, late).expect("apply");
        p.commit().expect("commit");
        assert!(views.outbox(10).expect("outbox").is_empty());
        // ...and the announcer, finishing, queues the correction itself.
        assert!(announced(&views, &catalog, &key, signal, &record));
        let outbox = views.outbox(10).expect("outbox");
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].1, Signal::Correction);
    }

    #[test]
    fn an_announcement_reads_the_batch_still_being_applied() {
        let catalog = catalog();
        let (_dir, views) = open_views(&catalog);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(1, event("h1", EventType::Requested, 0, 1, "ward-5"))
            .expect("apply");
        p.advance(Timestamp(31 * MIN)).expect("advance");
        p.commit().expect("commit");
        let (key, signal, record) = views.outbox(10).expect("outbox").remove(0);
        // The late stop is staged, not landed yet, when the announcer is done.
        let mut late = event("h1", EventType::Acknowledged, 10 * MIN, 2, "ward-5");
        late.envelope.recorded_at = Timestamp(40 * MIN);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(2, late).expect("apply");
        let corrected = p.seal().expect("sealed").expect("changes");
        views.stage(&corrected).expect("stage");
        let mut announcer = Projection::new(&views, &catalog).expect("projection");
        assert!(
            announcer
                .announced(&key, signal, &record)
                .expect("announced"),
            "the staged batch withdrew the breach: its correction is queued"
        );
        let announced = announcer.seal().expect("sealed").expect("changes");
        views.land(corrected).expect("land");
        views.stage(&announced).expect("stage");
        views.land(announced).expect("land");
        let outbox = views.outbox(10).expect("outbox");
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].1, Signal::Correction);
        assert_eq!(views.position().expect("position"), 2);
    }

    #[test]
    fn reapplying_an_event_changes_nothing() {
        let catalog = catalog();
        let (_dir, views) = open_views(&catalog);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(1, event("h1", EventType::Requested, 0, 1, "ward-5"))
            .expect("apply");
        p.commit().expect("commit");
        let before = views.dump().expect("dump");
        let mut p = Projection::new(&views, &catalog).expect("projection");
        assert_eq!(
            p.apply_recorded(1, event("h1", EventType::Requested, 0, 1, "ward-5"))
                .expect("apply"),
            ApplyOutcome::AlreadyApplied
        );
        p.commit().expect("commit");
        assert_eq!(views.dump().expect("dump"), before);
    }

    #[test]
    fn a_view_of_another_catalog_is_discarded() {
        let catalog = catalog();
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (views, _) = Views::open(dir.path(), catalog.version()).expect("open");
            let mut p = Projection::new(&views, &catalog).expect("projection");
            p.apply_recorded(1, event("h1", EventType::Requested, 0, 1, "ward-5"))
                .expect("apply");
            p.commit().expect("commit");
            views.flush().expect("flush");
        }
        let (views, opened) = Views::open(dir.path(), catalog.version()).expect("reopen");
        assert!(matches!(opened, Opened::Resumed(1)), "{opened:?}");
        drop(views);
        let (views, opened) = Views::open(dir.path(), "another-catalog").expect("reopen");
        assert!(matches!(opened, Opened::Discarded(_)), "{opened:?}");
        assert_eq!(views.position().expect("position"), 0);
        assert!(views.dump().expect("dump").is_empty());
    }

    #[test]
    fn a_resumed_store_finds_the_hand_offs_it_holds() {
        // After a restart the store must still know every hand-off it holds.
        let catalog = catalog();
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (views, _) = Views::open(dir.path(), catalog.version()).expect("open");
            let mut p = Projection::new(&views, &catalog).expect("projection");
            for (n, h) in ["h1", "h2", "h3"].into_iter().enumerate() {
                p.apply_recorded(n as u64 + 1, event(h, EventType::Requested, 0, 1, "ward-5"))
                    .expect("apply");
            }
            p.commit().expect("commit");
            views.flush().expect("flush");
        }
        let (views, opened) = Views::open(dir.path(), catalog.version()).expect("reopen");
        assert!(matches!(opened, Opened::Resumed(3)), "{opened:?}");
        // ...and when each of their clocks falls due.
        assert_eq!(views.timers().len(), 3);
        assert_eq!(
            views.next_deadline().expect("deadline"),
            Some(Timestamp(30 * MIN))
        );
        let mut p = Projection::new(&views, &catalog).expect("projection");
        let ack = p
            .apply_recorded(4, event("h2", EventType::Acknowledged, MIN, 2, "ward-5"))
            .expect("apply");
        assert_eq!(ack, ApplyOutcome::Applied);
        // A second REQUESTED of a stored hand-off is refused, not a new view.
        let again = p
            .apply_recorded(5, event("h3", EventType::Requested, MIN, 1, "ward-5"))
            .expect("apply");
        assert!(matches!(again, ApplyOutcome::Refused(_)), "{again:?}");
        p.commit().expect("commit");
        let h2 = views.handoff(&t("h2")).expect("read").expect("h2");
        assert_eq!(h2.handoff.status, HandoffStatus::Acknowledged);
        assert_eq!(h2.events.len(), 2);
        assert_eq!(views.timers().len(), 2, "h2's clock stopped");
        let mut p = Projection::new(&views, &catalog).expect("projection");
        assert_eq!(p.advance(Timestamp(31 * MIN)).expect("advance"), 2);
        p.commit().expect("commit");
        assert_eq!(views.next_deadline().expect("deadline"), None);
        let figures = views.compliance(&scope("response", None, None)).expect("c");
        assert_eq!((figures.met, figures.breached), (1, 2));
    }

    #[test]
    fn views_marked_in_doubt_are_discarded_at_the_next_open() {
        let catalog = catalog();
        let dir = tempfile::tempdir().expect("tempdir");
        let (views, _) = Views::open(dir.path(), catalog.version()).expect("open");
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(1, event("h1", EventType::Requested, 0, 1, "ward-5"))
            .expect("apply");
        p.commit().expect("commit");
        views.mark_in_doubt("ahead of the stream").expect("mark");
        drop(views);
        let (views, opened) = Views::open(dir.path(), catalog.version()).expect("open");
        match &opened {
            Opened::Discarded(reason @ Discarded::MarkedInDoubt(why)) => {
                assert_eq!(why, "ahead of the stream");
                assert_eq!(
                    reason.to_string(),
                    "they were marked in doubt: ahead of the stream"
                );
            }
            other => panic!("expected the views discarded as in doubt, got {other:?}"),
        }
        assert_eq!(views.position().expect("position"), 0);
        drop(views);
        let (_, opened) = Views::open(dir.path(), catalog.version()).expect("open");
        assert!(
            matches!(opened, Opened::Empty),
            "the mark went with them: {opened:?}"
        );
    }

    #[test]
    fn a_store_in_use_is_refused_not_discarded() {
        let catalog = catalog();
        let (dir, views) = open_views(&catalog);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(1, event("h1", EventType::Requested, 0, 1, "ward-5"))
            .expect("apply");
        p.commit().expect("commit");
        assert!(
            Views::open(dir.path(), catalog.version()).is_err(),
            "a second opener must not get in"
        );
        assert_eq!(
            views.position().expect("position"),
            1,
            "the store in use is untouched"
        );
    }

    fn rich_catalog() -> Catalog {
        Catalog::from_json(
            r#"{"departments": [{"id": "engineering", "name": "E"}, {"id": "cardiology", "name": "C"}, {"id": "ward-5", "name": "W5"}],
                "kinds": ["repair"],
                "promises": [{"id": "response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
                              "reset": ["reassigned"], "warn_at": 0.5, "escalate_to": "duty-coordinator",
                              "targets": {"routine": "30m"}}]}"#,
        )
        .expect("catalog")
    }

    fn signals(views: &Views) -> Vec<(Signal, u32)> {
        views
            .outbox(100)
            .expect("outbox")
            .into_iter()
            .map(|(_, signal, record)| (signal, record.cycle))
            .collect()
    }

    #[test]
    fn warns_once_then_breaches_and_keeps_every_cycle() {
        let catalog = rich_catalog();
        let (_dir, views) = open_views(&catalog);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(1, event("h1", EventType::Requested, 0, 1, "ward-5"))
            .expect("apply");
        assert_eq!(p.advance(Timestamp(15 * MIN + 1)).expect("advance"), 1);
        p.commit().expect("commit");
        assert_eq!(signals(&views), vec![(Signal::Warning, 1)]);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.advance(Timestamp(20 * MIN)).expect("advance");
        p.advance(Timestamp(31 * MIN)).expect("advance");
        p.commit().expect("commit");
        assert_eq!(
            signals(&views),
            vec![(Signal::Breach, 1), (Signal::Warning, 1)],
            "one warning, then the breach"
        );
        let breach = &views.outbox(10).expect("outbox")[0].2;
        assert_eq!(
            breach.escalate_to.as_ref().map(Token::as_str),
            Some("duty-coordinator")
        );

        // Reassigned to cardiology at 40 min, acknowledged at 50: cycle 2 met.
        let mut p = Projection::new(&views, &catalog).expect("projection");
        let mut reassigned = event("h1", EventType::Reassigned, 40 * MIN, 2, "ward-5");
        reassigned.event.supplier = Some(t("cardiology"));
        p.apply_recorded(2, reassigned).expect("apply");
        let mut ack = event("h1", EventType::Acknowledged, 50 * MIN, 3, "ward-5");
        ack.event.supplier = Some(t("cardiology"));
        p.apply_recorded(3, ack).expect("apply");
        p.commit().expect("commit");
        let engineering = views
            .compliance(&scope("response", Some(&t("engineering")), None))
            .expect("c");
        let cardiology = views
            .compliance(&scope("response", Some(&t("cardiology")), None))
            .expect("c");
        assert_eq!(
            (engineering.breached, engineering.met, engineering.warned),
            (1, 0, 1)
        );
        assert_eq!((cardiology.breached, cardiology.met), (0, 1));
        let breaches = views
            .list_breaches(&BreachFilter::default(), None, 10)
            .expect("b");
        assert_eq!(breaches.items.len(), 1);
        assert_eq!(
            (breaches.items[0].cycle, breaches.items[0].stopped_at),
            (1, Some(Timestamp(40 * MIN)))
        );
        assert_eq!(
            breaches.items[0].overrun(Timestamp(0)),
            std::time::Duration::from_secs(10 * 60)
        );
    }

    /// One batch that touches the same hand-offs, tallies, pair tallies and
    /// deadline entries again and again (with a replayed and a refused
    /// event between) stores the very bytes that one batch per event does:
    /// what the batch keeps decoded is written back whole, once.
    #[test]
    fn one_batch_stores_what_one_batch_per_event_stores() {
        let catalog = rich_catalog();
        let follow = |handoff: &str, event_type: EventType, at: i64, version: u64| {
            let mut e = event(handoff, event_type, at, version, "ward-5");
            (
                e.event.kind,
                e.event.supplier,
                e.event.customer,
                e.event.priority,
            ) = (None, None, None, None);
            e
        };
        let mut reassigned = follow("h1", EventType::Reassigned, 5 * MIN, 2);
        reassigned.event.supplier = Some(t("cardiology"));
        let mut back = follow("h1", EventType::Reassigned, 6 * MIN, 3);
        back.event.supplier = Some(t("engineering"));
        let mut rated = follow("h1", EventType::Rated, 46 * MIN, 6);
        rated.event.rating = Some(baton_domain::event::Rating {
            score: 2,
            comment: "late".into(),
        });
        let steps: Vec<(u64, RecordedEvent)> = vec![
            (1, event("h1", EventType::Requested, 0, 1, "ward-5")),
            (2, event("h2", EventType::Requested, MIN, 1, "ward-6")),
            (3, reassigned),
            (4, back),
            (5, event("h3", EventType::Requested, 30 * MIN, 1, "ward-5")),
            // Passes h2's warning (16 min) first.
            (6, follow("h2", EventType::Acknowledged, 20 * MIN, 2)),
            // Passes h1's warning and deadline (21, 36 min).
            (7, follow("h1", EventType::Acknowledged, 40 * MIN, 4)),
            (7, follow("h1", EventType::Acknowledged, 40 * MIN, 4)),
            // Acknowledged twice: refused, and h2's changes must survive it.
            (9, follow("h2", EventType::Acknowledged, 41 * MIN, 3)),
            (10, follow("h1", EventType::Completed, 45 * MIN, 5)),
            // Passes h3's warning (45 min).
            (11, rated),
        ];
        #[derive(Clone, Copy, PartialEq)]
        enum Mode {
            OneBatch,
            PerEvent,
            /// Per event, each batch computed while the one before it is
            /// still staged, not yet applied (as the projector pipelines).
            Pipelined,
        }
        let run = |mode: Mode| {
            let (dir, views) = open_views(&catalog);
            let mut outcomes = Vec::new();
            let mut landing: Option<Sealed> = None;
            let mut p = Projection::new(&views, &catalog).expect("projection");
            for (sequence, e) in steps.clone() {
                outcomes.push(p.apply_recorded(sequence, e).expect("apply"));
                match mode {
                    Mode::OneBatch => continue,
                    Mode::PerEvent => p.commit().expect("commit"),
                    Mode::Pipelined => {
                        let sealed = p.seal().expect("sealed").expect("changes");
                        if let Some(before) = landing.take() {
                            views.land(before).expect("land");
                        }
                        views.stage(&sealed).expect("stage");
                        landing = Some(sealed);
                    }
                }
                p = Projection::new(&views, &catalog).expect("projection");
            }
            // Passes h3's deadline (60 min).
            assert_eq!(p.advance(Timestamp(70 * MIN)).expect("advance"), 1);
            if let Some(before) = landing.take() {
                let sealed = p.seal().expect("sealed").expect("changes");
                views.land(before).expect("land");
                views.stage(&sealed).expect("stage");
                views.land(sealed).expect("land");
            } else {
                p.commit().expect("commit");
            }
            (outcomes, views.dump().expect("dump"), signals(&views), dir)
        };
        let (outcomes, dump, signalled, _dir) = run(Mode::PerEvent);
        assert_eq!(outcomes[7], ApplyOutcome::AlreadyApplied);
        assert!(
            matches!(outcomes[8], ApplyOutcome::Refused(_)),
            "{:?}",
            outcomes[8]
        );
        assert_eq!(
            signalled,
            vec![
                (Signal::Breach, 3),
                (Signal::Breach, 1),
                (Signal::Warning, 3),
                (Signal::Warning, 1),
                (Signal::Warning, 1)
            ],
            "h1's third cycle and h3 broke; h1, h2 and h3 warned"
        );
        let (piped_outcomes, piped_dump, piped_signalled, _dir3) = run(Mode::Pipelined);
        assert_eq!(piped_outcomes, outcomes);
        assert_eq!(piped_signalled, signalled);
        assert!(
            piped_dump == dump,
            "pipelined batches store what sequential ones do"
        );
        let (batched_outcomes, batched_dump, batched_signalled, _dir2) = run(Mode::OneBatch);
        assert_eq!(batched_outcomes, outcomes);
        assert_eq!(batched_signalled, signalled);
        assert_eq!(batched_dump.len(), dump.len());
        for (one, each) in batched_dump.iter().zip(&dump) {
            assert_eq!(one, each, "under {}", String::from_utf8_lossy(&each.0));
        }
    }

    fn disruption(
        phase: baton_domain::disruption::Phase,
        at: i64,
        recorded: i64,
    ) -> RecordedDisruption {
        RecordedDisruption {
            event: baton_domain::disruption::DisruptionEvent {
                disruption_id: t("lift-2"),
                phase,
                supplier: t("engineering"),
                kind: None,
                scope: BTreeMap::new(),
                occurred_at: Timestamp(at),
                reason: "lift out of order".into(),
                actor: String::new(),
            },
            recorded_at: Timestamp(recorded),
            sent_by: String::new(),
        }
    }

    /// (affected, failed before announcement, flagged hand-offs, disrupted in the matrix)
    fn disruption_figures(views: &Views) -> (u64, u64, Vec<String>, u64) {
        let d = views.disruptions(None, None).expect("disruptions");
        let flagged = ["h1", "h2"]
            .into_iter()
            .filter(|h| {
                views
                    .handoff(&t(h))
                    .expect("read")
                    .is_some_and(|v| !v.disruptions.is_empty())
            })
            .map(str::to_owned)
            .collect();
        let matrix = views.matrix(None, None).expect("matrix");
        let disrupted = matrix.values().map(|c| c.handoffs.disrupted).sum();
        (
            d[0].affected,
            d[0].failed_before_announcement,
            flagged,
            disrupted,
        )
    }

    #[test]
    fn a_disruption_flags_what_was_requested_into_it_whenever_it_arrives() {
        use baton_domain::disruption::Phase;
        let catalog = catalog();
        let mut h1 = event("h1", EventType::Requested, 10 * MIN, 1, "ward-5");
        h1.envelope.recorded_at = Timestamp(10 * MIN);
        let mut h2 = event("h2", EventType::Requested, 100 * MIN, 1, "ward-5");
        h2.envelope.recorded_at = Timestamp(100 * MIN);
        // Announced at 60 min, though it started at 0: h1 broke at 40 min.
        let started = disruption(Phase::Started, 0, 60 * MIN);
        let ended = disruption(Phase::Ended, 90 * MIN, 110 * MIN);

        let (_dir, views) = open_views(&catalog);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(1, h1.clone()).expect("apply");
        assert_eq!(
            p.disrupt_recorded(2, started.clone()).expect("apply"),
            ApplyOutcome::Applied
        );
        p.apply_recorded(3, h2.clone()).expect("apply");
        p.commit().expect("commit");
        assert_eq!(
            disruption_figures(&views),
            (2, 1, vec!["h1".into(), "h2".into()], 2),
            "open-ended, it covers both"
        );
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.disrupt_recorded(4, ended.clone()).expect("apply");
        assert_eq!(
            p.disrupt_recorded(5, ended.clone()).expect("apply"),
            ApplyOutcome::AlreadyApplied,
            "a retried end changes nothing"
        );
        p.commit().expect("commit");
        let live = disruption_figures(&views);
        assert_eq!(live, (1, 1, vec!["h1".into()], 1));
        assert!(views
            .disruptions(None, Some(Timestamp(120 * MIN)))
            .expect("active")
            .is_empty());

        // The disruption first, then the hand-offs: the same figures.
        let (_dir2, replay) = open_views(&catalog);
        let mut p = Projection::new(&replay, &catalog).expect("projection");
        let mut early_start = started;
        early_start.recorded_at = Timestamp(0);
        p.disrupt_recorded(1, early_start).expect("apply");
        p.apply_recorded(2, h1).expect("apply");
        p.apply_recorded(3, h2).expect("apply");
        p.disrupt_recorded(4, ended).expect("apply");
        p.commit().expect("commit");
        let replayed = disruption_figures(&replay);
        assert_eq!(
            (replayed.0, replayed.2, replayed.3),
            (live.0, live.2, live.3)
        );
        assert_eq!(
            replayed.1, 0,
            "announced in time, it failed nobody unwarned"
        );
    }

    #[test]
    fn ratings_and_rejections_reach_the_pair() {
        let catalog = catalog();
        let (_dir, views) = open_views(&catalog);
        let mut p = Projection::new(&views, &catalog).expect("projection");
        p.apply_recorded(1, event("h1", EventType::Requested, 0, 1, "ward-5"))
            .expect("apply");
        p.apply_recorded(2, event("h1", EventType::Acknowledged, MIN, 2, "ward-5"))
            .expect("apply");
        p.apply_recorded(3, event("h1", EventType::Completed, 2 * MIN, 3, "ward-5"))
            .expect("apply");
        let mut rated = event("h1", EventType::Rated, 3 * MIN, 4, "ward-5");
        rated.event.rating = Some(baton_domain::event::Rating {
            score: 4,
            comment: "fast".into(),
        });
        p.apply_recorded(4, rated).expect("apply");
        p.apply_recorded(5, event("h2", EventType::Requested, 0, 1, "ward-5"))
            .expect("apply");
        p.apply_recorded(6, event("h2", EventType::Rejected, MIN, 2, "ward-5"))
            .expect("apply");
        p.commit().expect("commit");
        let matrix = views.matrix(None, None).expect("matrix");
        let cell = &matrix[&("engineering".to_owned(), "ward-5".to_owned())];
        assert_eq!(
            (
                cell.handoffs.handoffs,
                cell.handoffs.rejected,
                cell.handoffs.rating()
            ),
            (2, 1, Some(4.0))
        );
        assert_eq!(
            (cell.clocks.met, cell.clocks.cancelled, cell.clocks.rejected),
            (1, 1, 1)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Hand-offs interleaved in any order, in any batch sizes, give the
        /// same views, byte for byte.
        #[test]
        fn interleaving_and_batching_do_not_change_the_views(
            acks in proptest::collection::vec(proptest::option::of(1i64..60), 1..12),
            seed in any::<u64>(),
            batch in 1usize..5,
        ) {
            let catalog = catalog();
            let mut per_handoff: Vec<Vec<RecordedEvent>> = Vec::new();
            for (i, ack) in acks.iter().enumerate() {
                let id = format!("h{i}");
                let customer = if i % 2 == 0 { "ward-5" } else { "ward-6" };
                let mut events = vec![event(&id, EventType::Requested, i as i64 * MIN, 1, customer)];
                if let Some(ack) = ack {
                    events.push(event(&id, EventType::Acknowledged, (i as i64 + ack) * MIN, 2, customer));
                }
                per_handoff.push(events);
            }
            let in_order: Vec<RecordedEvent> = per_handoff.iter().flatten().cloned().collect();
            // A random interleaving that keeps each hand-off's own order.
            let mut queues: Vec<std::collections::VecDeque<RecordedEvent>> =
                per_handoff.iter().map(|e| e.iter().cloned().collect()).collect();
            let mut shuffled = Vec::new();
            let mut s = seed;
            while queues.iter().any(|q| !q.is_empty()) {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                let live: Vec<usize> = (0..queues.len()).filter(|i| !queues[*i].is_empty()).collect();
                let pick = live[(s >> 33) as usize % live.len()];
                shuffled.extend(queues[pick].pop_front());
            }
            let run = |events: &[RecordedEvent], batch: usize| {
                let (_dir, views) = open_views(&catalog);
                for (chunk_index, chunk) in events.chunks(batch).enumerate() {
                    let mut p = Projection::new(&views, &catalog).expect("projection");
                    for (i, e) in chunk.iter().enumerate() {
                        let seq = (chunk_index * batch + i + 1) as u64;
                        p.apply_recorded(seq, e.clone()).expect("apply");
                    }
                    p.commit().expect("commit");
                }
                let mut dump = views.dump().expect("dump");
                // Stream sequences differ with the order; everything else must not.
                for (key, value) in dump.iter_mut() {
                    if key.starts_with(b"h/") {
                        let mut view: HandoffView = crate::codec::decode(key, value).expect("view");
                        view.first_sequence = 0;
                        view.last_sequence = 0;
                        *value = crate::codec::encode(&view).expect("encode");
                    }
                }
                dump
            };
            prop_assert_eq!(run(&in_order, 1), run(&shuffled, batch));
        }

        /// The running clocks listed by time left are the first `limit` of
        /// every running deadline in the views, whatever the warnings and
        /// second promises do to the order the timer's index keeps.
        #[test]
        fn open_clocks_are_the_earliest_running_deadlines(
            handoffs in proptest::collection::vec((0i64..90, proptest::option::of(1i64..20), any::<bool>()), 1..30),
            limit in 0usize..12,
            now in 0i64..120,
        ) {
            let catalog = Catalog::from_json(
                r#"{"departments": [{"id": "engineering", "name": "E"}, {"id": "ward-5", "name": "W5"}, {"id": "ward-6", "name": "W6"}],
                    "kinds": ["repair"],
                    "promises": [{"id": "response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
                                  "warn_at": 0.8, "targets": {"routine": "30m"}},
                                 {"id": "fixed", "kind": "repair", "start": "requested", "stop": ["completed"],
                                  "warn_at": 0.1, "targets": {"routine": "45m"}}]}"#,
            )
            .expect("catalog");
            let (_dir, views) = open_views(&catalog);
            let mut p = Projection::new(&views, &catalog).expect("projection");
            let mut seq = 0;
            for (i, (at, ack, ward6)) in handoffs.iter().enumerate() {
                let id = format!("h{i}");
                let customer = if *ward6 { "ward-6" } else { "ward-5" };
                seq += 1;
                p.apply_recorded(seq, event(&id, EventType::Requested, at * MIN, 1, customer)).expect("apply");
                if let Some(ack) = ack {
                    seq += 1;
                    p.apply_recorded(seq, event(&id, EventType::Acknowledged, (at + ack) * MIN, 2, customer)).expect("apply");
                }
            }
            p.advance(Timestamp(now * MIN)).expect("advance");
            p.commit().expect("commit");

            // The views' time: the last event's, or `now` once advanced past it.
            let last_event = handoffs.iter().map(|(at, ack, _)| at + ack.unwrap_or(0)).max().unwrap_or(0);
            let views_time = Timestamp(now.max(last_event) * MIN);
            for customer in [None, Some(t("ward-6"))] {
                let mut every: Vec<(Timestamp, String, String)> = Vec::new();
                for (key, value) in views.dump().expect("dump") {
                    if key.starts_with(b"h/") {
                        let view: HandoffView = crate::codec::decode(&key, &value).expect("view");
                        if customer.as_ref().is_some_and(|c| c != &view.handoff.customer) {
                            continue;
                        }
                        // What the lists show of a clock is what evaluating it now says.
                        let evaluated: Vec<RunningClock> = clocks_of(&catalog, &view.handoff, &view.events, views_time)
                            .iter()
                            .filter_map(RunningClock::of)
                            .collect();
                        prop_assert_eq!(&view.deadlines, &evaluated);
                        for clock in &view.deadlines {
                            every.push((clock.deadline, view.handoff.handoff_id.to_string(), clock.policy_id.to_string()));
                        }
                    }
                }
                every.sort();
                every.truncate(limit);
                let filter = crate::HandoffFilter { customer: customer.clone(), ..Default::default() };
                let listed: Vec<(Timestamp, String, String)> = views
                    .open_clocks(&filter, limit)
                    .expect("open clocks")
                    .into_iter()
                    .map(|o| (o.clock.deadline, o.handoff.handoff_id.to_string(), o.clock.policy_id.to_string()))
                    .collect();
                prop_assert_eq!(listed, every);
            }
        }

        /// Batches computed over the one still landing, as the projector
        /// pipelines them, with deadlines passing between events, keep the
        /// timer's index what the stored views say, and store what one
        /// batch at a time stores.
        #[test]
        fn pipelined_batches_keep_the_timer_index_true_to_the_views(
            acks in proptest::collection::vec(proptest::option::of(1i64..60), 1..12),
            batch in 1usize..5,
            tick in 1i64..45,
        ) {
            let catalog = catalog();
            let mut events = Vec::new();
            for (i, ack) in acks.iter().enumerate() {
                let id = format!("h{i}");
                events.push(event(&id, EventType::Requested, i as i64 * 5 * MIN, 1, "ward-5"));
                if let Some(ack) = ack {
                    events.push(event(&id, EventType::Acknowledged, (i as i64 * 5 + ack) * MIN, 2, "ward-5"));
                }
            }
            events.sort_by_key(|e| e.event.occurred_at);
            let (_dir, one_at_a_time) = open_views(&catalog);
            let (_dir2, pipelined) = open_views(&catalog);
            let mut landing: Option<Sealed> = None;
            for (chunk_index, chunk) in events.chunks(batch).enumerate() {
                let now = chunk.last().map(|e| e.event.occurred_at.0 + tick * MIN).unwrap_or(0);
                let fold = |views: &Views| {
                    let mut p = Projection::new(views, &catalog).expect("projection");
                    for (i, e) in chunk.iter().enumerate() {
                        p.apply_recorded((chunk_index * batch + i + 1) as u64, e.clone()).expect("apply");
                    }
                    p.advance(Timestamp(now)).expect("advance");
                    p.seal().expect("sealed")
                };
                if let Some(sealed) = fold(&one_at_a_time) {
                    one_at_a_time.stage(&sealed).expect("stage");
                    one_at_a_time.land(sealed).expect("land");
                }
                let sealed = fold(&pipelined);
                if let Some(before) = landing.take() {
                    pipelined.land(before).expect("land");
                }
                if let Some(sealed) = sealed {
                    pipelined.stage(&sealed).expect("stage");
                    landing = Some(sealed);
                }
                // With a batch staged and not landed, as after a failed land.
                let kept = pipelined.timers();
                prop_assert_eq!(&kept, &pipelined.timers_read_anew());
                prop_assert_eq!(kept, one_at_a_time.timers());
            }
            if let Some(last) = landing {
                pipelined.land(last).expect("land");
            }
            prop_assert_eq!(pipelined.dump().expect("dump"), one_at_a_time.dump().expect("dump"));
            prop_assert_eq!(pipelined.timers(), pipelined.timers_read_anew());
        }
    }
}
