//! Reading the views.

use baton_domain::{
    compliance::{bucket_start, Tallies},
    lifecycle::HandoffStatus,
    Timestamp, Token,
};

use crate::{
    store::{
        breach_key, decode, handoff_key, instant_bytes, instant_from_bytes, outbox_key,
        tally_prefix, BreachRecord, HandoffView, Signal,
    },
    Views, ViewsError,
};

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
        let key = handoff_key(id);
        self.tree().get(&key)?.map(|v| decode(&key, &v)).transpose()
    }

    /// Hand-offs in id order, filtered; `after` is the previous page's `next`.
    pub fn list_handoffs(
        &self,
        filter: &HandoffFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<HandoffView>, ViewsError> {
        scan(self, b"h/", after, limit, |key, value| {
            let view: HandoffView = decode(key, value)?;
            let h = &view.handoff;
            let keep = matches(&filter.supplier, &h.supplier)
                && matches(&filter.customer, &h.customer)
                && matches(&filter.kind, &h.kind)
                && filter.status.is_none_or(|s| s == h.status);
            Ok(keep.then_some(view))
        })
    }

    /// Breaches by policy then hand-off, filtered.
    pub fn list_breaches(
        &self,
        filter: &BreachFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<BreachRecord>, ViewsError> {
        let prefix = match &filter.policy {
            Some(policy) => format!("b/{policy}/").into_bytes(),
            None => b"b/".to_vec(),
        };
        scan(self, &prefix, after, limit, |key, value| {
            let record: BreachRecord = decode(key, value)?;
            let keep = matches(&filter.supplier, &record.supplier)
                && matches(&filter.customer, &record.customer)
                && (!filter.open_only || record.stopped_at.is_none());
            Ok(keep.then_some(record))
        })
    }

    /// Sum of a promise's tallies over clocks that started in `[from, to)`,
    /// at hour granularity (`from` is rounded down to its hour, `to` up).
    pub fn compliance(
        &self,
        policy: &Token,
        supplier: Option<&Token>,
        customer: Option<&Token>,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Tallies, ViewsError> {
        let prefix = tally_prefix(policy);
        let mut start = prefix.clone();
        start.extend_from_slice(&instant_bytes(
            from.map(bucket_start).unwrap_or(Timestamp(i64::MIN)),
        ));
        let mut total = Tallies::default();
        for entry in self.tree().range(start..) {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let rest = &key[prefix.len()..];
            let Some(bucket) = instant_from_bytes(rest) else {
                continue;
            };
            if to.is_some_and(|to| bucket >= to) {
                break;
            }
            let pair = String::from_utf8_lossy(rest.get(9..).unwrap_or_default()).into_owned();
            let mut parts = pair.splitn(2, '/');
            let (s, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if supplier.is_some_and(|want| want.as_str() != s)
                || customer.is_some_and(|want| want.as_str() != c)
            {
                continue;
            }
            total.merge(&decode(&key, &value)?);
        }
        Ok(total)
    }

    /// The earliest running deadline, if any.
    pub fn next_deadline(&self) -> Result<Option<Timestamp>, ViewsError> {
        match self.tree().scan_prefix(b"d/").next() {
            Some(entry) => Ok(instant_from_bytes(&entry?.0[2..])),
            None => Ok(None),
        }
    }

    /// Signals recorded but not yet announced: (outbox key, what, record).
    pub fn outbox(&self, limit: usize) -> Result<Vec<(Vec<u8>, Signal, BreachRecord)>, ViewsError> {
        let mut out = Vec::new();
        for entry in self.tree().scan_prefix(b"x/").take(limit) {
            let (key, value) = entry?;
            let signal = if key.starts_with(b"x/c/") {
                Signal::Correction
            } else {
                Signal::Breach
            };
            out.push((key.to_vec(), signal, decode(&key, &value)?));
        }
        Ok(out)
    }

    /// Marks an outbox entry as announced. A breach whose record is gone by
    /// now (a late event corrected it while it was being published) queues
    /// its correction; returns whether it did. Call with the writer lock held.
    pub fn announced(
        &self,
        key: &[u8],
        signal: Signal,
        record: &BreachRecord,
    ) -> Result<bool, ViewsError> {
        self.tree().remove(key)?;
        let still_breached = self
            .tree()
            .contains_key(breach_key(&record.policy_id, &record.handoff_id))?;
        if signal == Signal::Breach && !still_breached {
            let correction = outbox_key(Signal::Correction, &record.policy_id, &record.handoff_id);
            self.tree()
                .insert(correction, crate::store::encode(record))?;
            return Ok(true);
        }
        Ok(false)
    }
}
