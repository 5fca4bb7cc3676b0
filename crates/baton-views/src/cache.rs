//! Decoded values a [`Projection`](crate::Projection) has read or changed in
//! its batch, written back once at commit.
//!
//! Several events of a hand-off usually meet in one batch, and decoding and
//! encoding its view and every tally it counts in for each of them would be
//! most of a rebuild's time. Here each value is decoded at most once per
//! batch, changed in place, and encoded once into the batch when it
//! commits. The bytes stored are those a write per event would have
//! stored: an empty tally is deleted, and reads afterwards see an empty one.
//!
//! It also remembers, per batch, which disruptions each supplier has, so
//! that they are not scanned for on every event. It must never hold
//! anything across batches: it is dropped with its projection, so the views
//! on disk stay the only truth.

use std::collections::hash_map::Entry;

use foldhash::HashMap;

use baton_domain::{compliance::Tallies, Token};

use crate::{
    keys::{Key, Prefix},
    store::Batch,
    view::{HandoffView, PairTallies},
    ViewsError,
};

/// A decoded value and whether it changed since it was read.
#[derive(Debug)]
struct Slot<T> {
    value: T,
    dirty: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Cache {
    /// By hand-off id; `None`: no such hand-off (yet).
    handoffs: HashMap<Token, Slot<Option<HandoffView>>>,
    /// By `a/` key; empty when absent.
    tallies: HashMap<Vec<u8>, Slot<Tallies>>,
    /// By `p/` key; empty when absent.
    pairs: HashMap<Vec<u8>, Slot<PairTallies>>,
    /// `r/` keys of each supplier's disruptions.
    disruptions: HashMap<Token, Vec<Vec<u8>>>,
    /// Hand-offs whose views were retired in this batch: deleted at commit.
    retired: Vec<Token>,
}

impl Cache {
    fn load_handoff(&mut self, batch: &Batch<'_>, id: &Token) -> Result<(), ViewsError> {
        if !self.handoffs.contains_key(id) {
            let value = batch.get::<HandoffView>(&Key::handoff(id).to_bytes())?;
            self.handoffs.insert(
                id.clone(),
                Slot {
                    value,
                    dirty: false,
                },
            );
        }
        Ok(())
    }

    /// Whether the hand-off exists.
    pub(crate) fn has_handoff(
        &mut self,
        batch: &Batch<'_>,
        id: &Token,
    ) -> Result<bool, ViewsError> {
        self.load_handoff(batch, id)?;
        Ok(self.handoffs.get(id).is_some_and(|s| s.value.is_some()))
    }

    /// Takes the hand-off's view out for changing, with whether it had
    /// changed already; give it back with [`Cache::put_handoff`] or
    /// [`Cache::restore_handoff`].
    pub(crate) fn take_handoff(
        &mut self,
        batch: &Batch<'_>,
        id: &Token,
    ) -> Result<Option<(HandoffView, bool)>, ViewsError> {
        self.load_handoff(batch, id)?;
        Ok(self
            .handoffs
            .get_mut(id)
            .and_then(|slot| slot.value.take().map(|view| (view, slot.dirty))))
    }

    /// Gives back a view taken but left as it was.
    pub(crate) fn restore_handoff(&mut self, view: HandoffView, dirty: bool) {
        let id = &view.handoff.handoff_id;
        match self.handoffs.get_mut(id) {
            Some(slot) => {
                slot.value = Some(view);
                slot.dirty = dirty;
            }
            None => {
                self.handoffs.insert(
                    id.clone(),
                    Slot {
                        value: Some(view),
                        dirty,
                    },
                );
            }
        }
    }

    /// Stores a changed view (written at commit).
    pub(crate) fn put_handoff(&mut self, view: HandoffView) {
        self.restore_handoff(view, true);
    }

    /// Forgets a hand-off's view: from here on this batch sees none, and
    /// commit deletes the stored one.
    pub(crate) fn retire_handoff(&mut self, id: Token) {
        self.handoffs.insert(
            id.clone(),
            Slot {
                value: None,
                dirty: false,
            },
        );
        self.retired.push(id);
    }

    /// The tallies under `key` (empty if none), for changing.
    pub(crate) fn tally_mut(
        &mut self,
        batch: &Batch<'_>,
        key: Vec<u8>,
    ) -> Result<&mut Tallies, ViewsError> {
        let slot = match self.tallies.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let value = batch.get::<Tallies>(e.key())?.unwrap_or_default();
                e.insert(Slot {
                    value,
                    dirty: false,
                })
            }
        };
        slot.dirty = true;
        Ok(&mut slot.value)
    }

    /// The pair tallies under `key` (empty if none), for changing.
    pub(crate) fn pair_mut(
        &mut self,
        batch: &Batch<'_>,
        key: Vec<u8>,
    ) -> Result<&mut PairTallies, ViewsError> {
        let slot = match self.pairs.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let value = batch.get::<PairTallies>(e.key())?.unwrap_or_default();
                e.insert(Slot {
                    value,
                    dirty: false,
                })
            }
        };
        slot.dirty = true;
        Ok(&mut slot.value)
    }

    /// Keys of the supplier's disruptions, committed or pending.
    pub(crate) fn disruption_keys(
        &mut self,
        batch: &Batch<'_>,
        supplier: &Token,
    ) -> Result<&[Vec<u8>], ViewsError> {
        if !self.disruptions.contains_key(supplier) {
            let keys = batch.keys_under(Prefix::DisruptionsOf(supplier.as_str()))?;
            self.disruptions.insert(supplier.clone(), keys);
        }
        Ok(self
            .disruptions
            .get(supplier)
            .map(Vec::as_slice)
            .unwrap_or_default())
    }

    /// A disruption was stored: its supplier's keys may have changed.
    pub(crate) fn forget_disruptions(&mut self) {
        self.disruptions.clear();
    }

    /// Writes every changed value into the batch.
    pub(crate) fn write(self, batch: &mut Batch<'_>) -> Result<(), ViewsError> {
        for id in &self.retired {
            batch.delete(Key::handoff(id).to_bytes());
        }
        for (id, slot) in self.handoffs {
            if let (true, Some(view)) = (slot.dirty, slot.value) {
                batch.put(Key::handoff(&id).to_bytes(), &view)?;
            }
        }
        for (key, slot) in self.tallies.into_iter().filter(|(_, s)| s.dirty) {
            if slot.value.is_empty() {
                batch.delete(key);
            } else {
                batch.put(key, &slot.value)?;
            }
        }
        for (key, slot) in self.pairs.into_iter().filter(|(_, s)| s.dirty) {
            if slot.value.handoffs == 0 {
                batch.delete(key);
            } else {
                batch.put(key, &slot.value)?;
            }
        }
        Ok(())
    }
}
