//! The hand-offs appended to most recently, bounded.
//!
//! Ingest keeps each hand-off's state between appends so that the next
//! event of it needs no read of the stream. The cache used to evict "an
//! arbitrary entry" when full: the first in the hash table's order. Once
//! the low end of the table had been emptied by evictions, that first entry
//! was ever more often one just inserted, that is, a hand-off in the middle
//! of its lifecycle, and its next event then read its history back from
//! JetStream; past 100,000 hand-offs the bench's batch ingest ran at a
//! third of its rate, nats-server busy answering those reads.
//!
//! Here two generations share the capacity: entries go into the young one;
//! when it holds half the capacity it becomes the old one and the previous
//! old one is dropped whole. A hit in the old generation moves the entry
//! back into the young one. So whatever was used within the last half of
//! the capacity's inserts stays, and nothing is scanned to evict.

use std::{borrow::Borrow, collections::HashMap, hash::Hash};

#[derive(Debug)]
pub(crate) struct Recent<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    /// Entries the young generation takes before it ages.
    generation: usize,
}

impl<K: Hash + Eq, V> Recent<K, V> {
    /// At most `capacity` entries (at least 2).
    pub(crate) fn new(capacity: usize) -> Recent<K, V> {
        Recent {
            young: HashMap::new(),
            old: HashMap::new(),
            generation: (capacity / 2).max(1),
        }
    }

    /// The entry for `key`, now counted as just used.
    pub(crate) fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.young.contains_key(key) {
            let (key, value) = self.old.remove_entry(key)?;
            self.insert(key, value);
        }
        self.young.get(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        self.old.remove(&key);
        self.young.insert(key, value);
        if self.young.len() >= self.generation {
            self.old = std::mem::take(&mut self.young);
        }
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.young.remove(key);
        self.old.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_its_capacity() {
        let mut recent = Recent::new(100);
        for n in 0..10_000 {
            recent.insert(n, n);
            assert!(recent.len() <= 100, "{} entries after {n}", recent.len());
        }
        assert_eq!(recent.get(&9_999), Some(&9_999));
        assert_eq!(recent.get(&0), None);
    }

    #[test]
    fn what_is_in_use_survives_a_stream_of_new_entries() {
        // A few hand-offs in the middle of their lifecycles, among a flood
        // of new ones: each is used again within half the capacity.
        let mut recent = Recent::new(1_000);
        let active: Vec<u64> = (0..50).map(|n| 1_000_000 + n).collect();
        for &a in &active {
            recent.insert(a, a);
        }
        for n in 0..100_000u64 {
            recent.insert(n, n);
            if n % 400 == 0 {
                for &a in &active {
                    assert_eq!(recent.get(&a), Some(&a), "lost {a} after {n} inserts");
                }
            }
        }
    }

    #[test]
    fn a_removed_entry_is_gone_from_both_generations() {
        let mut recent = Recent::new(4);
        recent.insert("a", 1);
        recent.insert("b", 2); // "a" and "b" age
        recent.insert("c", 3);
        recent.remove("a");
        recent.remove("c");
        assert_eq!(recent.get("a"), None);
        assert_eq!(recent.get("c"), None);
        assert_eq!(recent.get("b"), Some(&2));
    }
}
