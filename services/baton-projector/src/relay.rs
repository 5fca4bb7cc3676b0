//! Signals this projector's own views hold, handed in process to its
//! watchers (`WatchBreaches`, `WatchWarnings`) and to the board's `/events`.
//!
//! The announcer relays each breach, correction and warning once it knows
//! what NATS holds for it; the consumer relays each disruption once the
//! batch that applied it has landed. Nothing here is read from NATS, so a
//! message someone else published on Baton's subjects never reaches a
//! screen or a watcher.
//!
//! It must never hold up its senders: a receiver that falls behind loses
//! what it missed and is told how much.

use std::sync::Arc;

use baton_proto::v1;
use tokio::sync::broadcast;

/// Signals a receiver may fall behind by before it loses some.
pub const CAPACITY: usize = 1024;

/// One signal, as the wire shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Relayed {
    Breach(v1::Breach),
    Correction(v1::Breach),
    Warning(v1::SlaWarning),
    Disruption(v1::DisruptionEvent),
    /// A breach whose escalation someone acknowledged.
    Acknowledgement(v1::Breach),
}

/// The in-process channel of relayed signals.
#[derive(Debug)]
pub struct Relay {
    sender: broadcast::Sender<Arc<Relayed>>,
}

impl Default for Relay {
    fn default() -> Self {
        Relay {
            sender: broadcast::Sender::new(CAPACITY),
        }
    }
}

impl Relay {
    /// Hands `signal` to every receiver there is (none is fine).
    pub fn send(&self, signal: Relayed) {
        let _ = self.sender.send(Arc::new(signal));
    }

    /// Every signal sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Relayed>> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_receiver_gets_what_was_sent_after_it_subscribed() {
        let relay = Relay::default();
        relay.send(Relayed::Warning(v1::SlaWarning::default()));
        let mut first = relay.subscribe();
        let mut second = relay.subscribe();
        let breach = v1::Breach {
            handoff_id: "h-1".into(),
            ..Default::default()
        };
        relay.send(Relayed::Breach(breach.clone()));
        for receiver in [&mut first, &mut second] {
            let got = receiver.recv().await.expect("a signal");
            assert_eq!(*got, Relayed::Breach(breach.clone()));
        }
    }

    #[tokio::test]
    async fn a_receiver_that_falls_behind_is_told_how_much_it_lost() {
        let relay = Relay::default();
        let mut slow = relay.subscribe();
        for _ in 0..CAPACITY + 5 {
            relay.send(Relayed::Warning(v1::SlaWarning::default()));
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(5))
        ));
    }
}
