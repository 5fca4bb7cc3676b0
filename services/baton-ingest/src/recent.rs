//! The hand-offs appended to most recently, bounded.
//!
//! Ingest keeps each hand-off's state between appends so that the next
//! event of it needs no read of the stream. What it evicts matters: a
//! hand-off evicted in the middle of its lifecycle reads its history back
//! from JetStream on its next event, and enough of those keep nats-server
//! busy answering reads instead of appends (bench/HISTORY.md, "Design
//! choices the bench decided").
//!
//! So two generations share the capacity: entries go into the young one;
//! when it holds half the capacity it becomes the old one and the previous
//! old one is dropped whole. A hit in the old generation moves the entry
//! back into the young one. So whatever was used within the last half of
//! the capacity's inserts stays, and nothing is scanned to evict.

//!
//! The capacity is a number of entries and a number of bytes (each entry
//! weighs what its owner says it does): a generation ages when it reaches
//! half of either, so a few very large entries cannot grow the cache past
//! its bytes.

use std::{borrow::Borrow, collections::HashMap, hash::Hash};

/// One generation: its entries with their weights, and the weights' sum.
#[derive(Debug)]
struct Generation<K, V> {
    entries: HashMap<K, (V, usize)>,
    bytes: usize,
}

impl<K: Hash + Eq, V> Generation<K, V> {
    fn new() -> Generation<K, V> {
        Generation {
            entries: HashMap::new(),
            bytes: 0,
        }
    }

    fn remove_entry<Q>(&mut self, key: &Q) -> Option<(K, V, usize)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (key, (value, weight)) = self.entries.remove_entry(key)?;
        self.bytes -= weight;
        Some((key, value, weight))
    }
}

#[derive(Debug)]
pub(crate) struct Recent<K, V> {
    young: Generation<K, V>,
    old: Generation<K, V>,
    /// Entries the young generation takes before it ages.
    generation: usize,
    /// Bytes the young generation takes before it ages.
    generation_bytes: usize,
}

impl<K: Hash + Eq, V> Recent<K, V> {
    /// At most `capacity` entries (at least 2) weighing at most about
    /// `capacity_bytes` (an entry heavier than half of it still fits alone).
    pub(crate) fn new(capacity: usize, capacity_bytes: usize) -> Recent<K, V> {
        Recent {
            young: Generation::new(),
            old: Generation::new(),
            generation: (capacity / 2).max(1),
            generation_bytes: (capacity_bytes / 2).max(1),
        }
    }

    /// The entry for `key`, now counted as just used.
    pub(crate) fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.young.entries.contains_key(key) {
            let (key, value, weight) = self.old.remove_entry(key)?;
            self.insert(key, value, weight);
        }
        // Just inserted, it may have aged with its generation at once.
        self.young
            .entries
            .get(key)
            .or_else(|| self.old.entries.get(key))
            .map(|(value, _)| value)
    }

    /// Keeps `value` for `key`, weighing `weight` bytes.
    pub(crate) fn insert(&mut self, key: K, value: V, weight: usize) {
        self.old.remove_entry(&key);
        self.young.remove_entry(&key);
        self.young.bytes += weight;
        self.young.entries.insert(key, (value, weight));
        if self.young.entries.len() >= self.generation || self.young.bytes >= self.generation_bytes
        {
            self.old = std::mem::replace(&mut self.young, Generation::new());
        }
    }

    /// Drops every entry.
    pub(crate) fn clear(&mut self) {
        self.young = Generation::new();
        self.old = Generation::new();
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.young.remove_entry(key);
        self.old.remove_entry(key);
    }

    /// Bytes held by both generations, as the entries' owners weighed them.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.young.bytes + self.old.bytes
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.entries.len() + self.old.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_its_capacity() {
        let mut recent = Recent::new(100, usize::MAX);
        for n in 0..10_000 {
            recent.insert(n, n, 1);
            assert!(recent.len() <= 100, "{} entries after {n}", recent.len());
        }
        assert_eq!(recent.get(&9_999), Some(&9_999));
        assert_eq!(recent.get(&0), None);
    }

    #[test]
    fn what_is_in_use_survives_a_stream_of_new_entries() {
        // A few hand-offs in the middle of their lifecycles, among a flood
        // of new ones: each is used again within half the capacity.
        let mut recent = Recent::new(1_000, usize::MAX);
        let active: Vec<u64> = (0..50).map(|n| 1_000_000 + n).collect();
        for &a in &active {
            recent.insert(a, a, 1);
        }
        for n in 0..100_000u64 {
            recent.insert(n, n, 1);
            if n % 400 == 0 {
                for &a in &active {
                    assert_eq!(recent.get(&a), Some(&a), "lost {a} after {n} inserts");
                }
            }
        }
    }

    #[test]
    fn a_removed_entry_is_gone_from_both_generations() {
        let mut recent = Recent::new(4, usize::MAX);
        recent.insert("a", 1, 1);
        recent.insert("b", 2, 1); // "a" and "b" age
        recent.insert("c", 3, 1);
        recent.remove("a");
        recent.remove("c");
        assert_eq!(recent.get("a"), None);
        assert_eq!(recent.get("c"), None);
        assert_eq!(recent.get("b"), Some(&2));
    }

    #[test]
    fn heavy_entries_are_bounded_by_bytes_as_well() {
        // Room for 1,000 entries but only 10,000 bytes: entries of 1,000
        // bytes each age after five in a generation.
        let mut recent = Recent::new(1_000, 10_000);
        for n in 0..100 {
            recent.insert(n, n, 1_000);
            assert!(
                recent.bytes() <= 10_000,
                "{} bytes after {n}",
                recent.bytes()
            );
        }
        assert!(recent.len() <= 10);
        assert_eq!(recent.get(&99), Some(&99));
        // One entry heavier than the whole bound still fits, alone.
        recent.insert(1_000, 1_000, 50_000);
        assert_eq!(recent.get(&1_000), Some(&1_000));
        // Replacing an entry replaces its weight.
        let mut recent = Recent::new(1_000, 10_000);
        recent.insert("a", 1, 3_000);
        recent.insert("a", 2, 10);
        assert_eq!(recent.bytes(), 10);
        recent.remove("a");
        assert_eq!(recent.bytes(), 0);
    }
}
