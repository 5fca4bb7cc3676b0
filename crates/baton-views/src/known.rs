//! Which hand-offs the store may hold, so that a new one costs no sled
//! lookup.
//!
//! Most events of a rebuild, and every REQUESTED of live traffic, are for a
//! hand-off the views have never seen, and asking sled for a key it does
//! not hold costs as much as reading one that it does (a whole descent of
//! the tree). This keeps a 64-bit hash of the id of every hand-off in the
//! store: those found when the store is opened and those created since.
//!
//! It answers only "certainly not" or "maybe": an id whose hash is absent
//! has no view (every view created goes through [`KnownHandoffs::note`]
//! before its batch is staged); anything else is looked up as before. A
//! hash noted for a batch that then failed to apply, or shared by two ids,
//! merely costs that lookup. It must never be asked whether a hand-off
//! exists: sled is the only answer to that.

use std::{hash::BuildHasher, sync::Mutex};

use foldhash::{fast::RandomState, HashSet};

use baton_domain::Token;

#[derive(Debug, Default)]
pub(crate) struct KnownHandoffs {
    hashes: Mutex<HashSet<u64>>,
    hasher: RandomState,
}

impl KnownHandoffs {
    /// From the ids of the views a store holds.
    pub(crate) fn of<E>(
        ids: impl IntoIterator<Item = Result<impl AsRef<[u8]>, E>>,
    ) -> Result<KnownHandoffs, E> {
        let known = KnownHandoffs::default();
        {
            let mut hashes = known.lock();
            for id in ids {
                hashes.insert(known.hasher.hash_one(id?.as_ref()));
            }
        }
        Ok(known)
    }

    /// False only if the store certainly holds no view of `id`.
    pub(crate) fn may_hold(&self, id: &Token) -> bool {
        self.lock().contains(&self.hash(id))
    }

    /// A view of `id` is about to be stored.
    pub(crate) fn note(&self, id: &Token) {
        let hash = self.hash(id);
        self.lock().insert(hash);
    }

    fn hash(&self, id: &Token) -> u64 {
        self.hasher.hash_one(id.as_str().as_bytes())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        // Every operation is a single insert or lookup: a panic elsewhere
        // cannot leave the set half-changed.
        self.hashes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Token {
        Token::parse(s).expect("token")
    }

    #[test]
    fn only_ids_never_noted_nor_stored_are_ruled_out() {
        let known = KnownHandoffs::of([Ok::<_, ()>("stored-1"), Ok("stored-2")]).expect("known");
        assert!(known.may_hold(&t("stored-1")));
        assert!(known.may_hold(&t("stored-2")));
        assert!(!known.may_hold(&t("new-1")));
        known.note(&t("new-1"));
        assert!(known.may_hold(&t("new-1")));
        assert!(!known.may_hold(&t("new-2")));
    }
}
