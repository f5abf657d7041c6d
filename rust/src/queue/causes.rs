//! Why a key was queued (reconcile causes) and which keys are reconciled in a hot loop.
//!
//! Per key the queue keeps the causes recorded since the key was last handed out: a
//! count per cause kind, the last few related objects (an owned or watched object that
//! mapped to the key) and the latest error-retry number. Memory per key is bounded:
//! `CAUSES` counters, at most `RELATED_KEPT` related objects, one retry number.
use super::{Change, Origin};
use crate::store::Key;
use hashbrown::HashMap;

/// Why a key was added to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The object itself was added (a live watch event).
    Added,
    /// The object itself was updated (a live watch event).
    Updated,
    /// The object itself was deleted (a live watch event).
    Deleted,
    /// An owned or watched object changed and mapped to this key.
    Related,
    /// From an initial list, a relist or a snapshot (low priority).
    Listed,
    /// The controller's periodic resync (low priority).
    Resync,
    /// The reconcile asked to look again after some seconds.
    RequeueAfter,
    /// The reconcile asked to be requeued through the rate limiter.
    Requeue,
    /// The reconcile failed (or timed out) and is retried through the rate limiter.
    Retry,
    /// A plain `add` by user code.
    Manual,
}

/// How many cause kinds there are.
pub const CAUSES: usize = 10;

/// How many related objects a key keeps (the most recent ones).
pub const RELATED_KEPT: usize = 4;

impl Cause {
    pub const ALL: [Cause; CAUSES] = [
        Cause::Added,
        Cause::Updated,
        Cause::Deleted,
        Cause::Related,
        Cause::Listed,
        Cause::Resync,
        Cause::RequeueAfter,
        Cause::Requeue,
        Cause::Retry,
        Cause::Manual,
    ];

    /// The name logs and metrics use.
    pub fn name(self) -> &'static str {
        match self {
            Cause::Added => "added",
            Cause::Updated => "updated",
            Cause::Deleted => "deleted",
            Cause::Related => "related",
            Cause::Listed => "listed",
            Cause::Resync => "resync",
            Cause::RequeueAfter => "requeue_after",
            Cause::Requeue => "requeue",
            Cause::Retry => "retry",
            Cause::Manual => "manual",
        }
    }

    pub fn parse(name: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The cause of a key the informer core enqueues.
    pub fn of(origin: &Origin<'_>) -> Cause {
        if origin.listed {
            Cause::Listed
        } else if origin.via.is_some() {
            Cause::Related
        } else {
            match origin.change {
                Change::Added => Cause::Added,
                Change::Updated => Cause::Updated,
                Change::Deleted => Cause::Deleted,
            }
        }
    }

    /// Keys from lists and resyncs wait behind live events and requeues.
    pub fn priority(self) -> Priority {
        match self {
            Cause::Listed | Cause::Resync => Priority::Low,
            _ => Priority::Normal,
        }
    }
}

/// A queued key's priority: `Normal` keys are handed out first; `Low` ones get every
/// `low_every`-th hand-out while normal keys wait (aging: never starved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Low = 0,
    Normal = 1,
}

/// A related object: its resource's name and its key.
pub type Related = (Key, Key);

/// The causes of one key, since it was last handed out. Small (32 bytes): every queued
/// key holds two (pending and taken); related objects are boxed, as they are rarer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Causes {
    /// Per `Cause` (in `Cause::ALL` order), saturating.
    pub counts: [u16; CAUSES],
    /// The latest error-retry number (how many times the rate limiter delayed it).
    pub retries: u32,
    /// The most recent related objects (resource name, key), oldest first, each once.
    // Boxed on purpose: 8 bytes in every key's state instead of a Vec's 24.
    #[allow(clippy::box_collection)]
    related: Option<Box<Vec<Related>>>,
}

impl Causes {
    pub fn record(&mut self, cause: Cause, via: Option<(&str, &str)>, retries: u32) {
        let n = &mut self.counts[cause as usize];
        *n = n.saturating_add(1);
        if cause == Cause::Retry {
            self.retries = retries;
        }
        if let Some((resource, key)) = via {
            let related = self.related.get_or_insert_with(Default::default);
            if let Some(at) = related
                .iter()
                .position(|(r, k)| &**r == resource && &**k == key)
            {
                let seen = related.remove(at);
                related.push(seen);
            } else {
                if related.len() == RELATED_KEPT {
                    related.remove(0);
                }
                related.push((Key::from(resource), Key::from(key)));
            }
        }
    }

    /// The most recent related objects (resource name, key), oldest first, each once.
    pub fn related(&self) -> &[Related] {
        self.related.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Adds `other`'s causes to these (a delayed key promoted onto a queued one).
    pub fn merge(&mut self, other: Causes) {
        for (n, m) in self.counts.iter_mut().zip(other.counts) {
            *n = n.saturating_add(m);
        }
        if other.counts[Cause::Retry as usize] > 0 {
            self.retries = other.retries;
        }
        for (resource, key) in other.related.map(|r| *r).unwrap_or_default() {
            let related = self.related.get_or_insert_with(Default::default);
            related.retain(|(r, k)| !(r == &resource && k == &key));
            if related.len() == RELATED_KEPT {
                related.remove(0);
            }
            related.push((resource, key));
        }
    }

    /// Normal if any cause is; low if every cause is low (and there is one).
    pub fn priority(&self) -> Priority {
        let any_normal = Cause::ALL
            .iter()
            .any(|c| c.priority() == Priority::Normal && self.counts[*c as usize] > 0);
        if any_normal || self.is_empty() {
            Priority::Normal
        } else {
            Priority::Low
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&n| n == 0)
    }
}

/// A key handed out more than `threshold` times within `window` seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct HotLoop {
    pub key: Key,
    /// Hand-outs in the current window.
    pub reconciles: u32,
    /// The causes of those hand-outs, summed.
    pub causes: [u32; CAUSES],
}

#[derive(Debug)]
struct Recent {
    /// When the current window started (the first hand-out in it).
    since: f64,
    count: u32,
    warned: bool,
    /// Causes summed over the window, kept once a key is handed out twice in it.
    causes: Option<Box<[u32; CAUSES]>>,
}

/// Counts hand-outs per key in fixed windows that start at a key's first hand-out:
/// a key handed out more than `threshold` times in one window is reported once; it is
/// reported again only after a window with at most `threshold` hand-outs, or none at
/// all (it calmed down). Entries of keys not handed out for a window are swept, amortized.
#[derive(Debug)]
pub struct HotLoops {
    /// 0: off.
    pub threshold: u32,
    pub window: f64,
    recent: HashMap<Key, Recent>,
    found: Vec<HotLoop>,
    sweep_at: usize,
    swept: f64,
}

const FIRST_SWEEP: usize = 1024;

impl HotLoops {
    pub fn new(threshold: u32, window: f64) -> Self {
        HotLoops {
            threshold,
            window,
            recent: HashMap::new(),
            found: Vec::new(),
            sweep_at: FIRST_SWEEP,
            swept: f64::NEG_INFINITY,
        }
    }

    /// `key` was handed out at `now` for `causes`.
    pub fn handed_out(&mut self, key: &Key, causes: &Causes, now: f64) {
        if self.threshold == 0 {
            return;
        }
        let window = self.window;
        let r = self.recent.entry_ref(key).or_insert_with(|| Recent {
            since: now,
            count: 0,
            warned: false,
            causes: None,
        });
        if now - r.since >= window {
            // Calm: the window that ended was not hot, or a whole window went by quiet.
            if r.count <= self.threshold || now - r.since >= 2.0 * window {
                r.warned = false;
            }
            r.since = now;
            r.count = 0;
            r.causes = None;
        }
        r.count += 1;
        if r.count >= 2 {
            let sum = r.causes.get_or_insert_with(Default::default);
            for (s, n) in sum.iter_mut().zip(causes.counts) {
                *s = s.saturating_add(u32::from(n));
            }
        }
        if r.count > self.threshold && !r.warned {
            r.warned = true;
            self.found.push(HotLoop {
                key: key.clone(),
                reconciles: r.count,
                causes: r.causes.as_deref().copied().unwrap_or_default(),
            });
        }
        // Amortized: when the map doubled, or a window after the last sweep (so the
        // entries of a relist's keys go once they are a window old).
        let due = now - self.swept >= window && self.recent.len() > FIRST_SWEEP;
        if self.recent.len() >= self.sweep_at || due {
            self.recent.retain(|_, r| now - r.since < window);
            self.sweep_at = (self.recent.len() * 2).max(FIRST_SWEEP);
            self.swept = now;
        }
    }

    /// The keys found in a hot loop since the last call.
    pub fn take(&mut self) -> Vec<HotLoop> {
        std::mem::take(&mut self.found)
    }

    /// Keys tracked (handed out within about a window).
    pub fn tracked(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn updated() -> Causes {
        let mut c = Causes::default();
        c.record(Cause::Updated, None, 0);
        c
    }

    #[test]
    fn a_key_keeps_only_its_last_few_related_objects_each_once() {
        let mut c = Causes::default();
        for i in 0..10 {
            c.record(Cause::Related, Some(("ConfigMap", &format!("ns/{i}"))), 0);
        }
        c.record(Cause::Related, Some(("ConfigMap", "ns/7")), 0);
        let keys: Vec<&str> = c.related().iter().map(|(_, k)| &**k).collect();
        assert_eq!(keys, ["ns/6", "ns/8", "ns/9", "ns/7"]);
        assert_eq!(c.counts[Cause::Related as usize], 11);
    }

    #[test]
    fn causes_stay_small() {
        assert!(std::mem::size_of::<Causes>() <= 32);
    }

    #[test]
    fn the_latest_retry_number_is_kept() {
        let mut c = Causes::default();
        c.record(Cause::Retry, None, 1);
        c.record(Cause::Retry, None, 2);
        assert_eq!((c.retries, c.counts[Cause::Retry as usize]), (2, 2));
    }

    #[test]
    fn causes_are_low_priority_only_when_every_cause_is() {
        let mut c = Causes::default();
        assert_eq!(c.priority(), Priority::Normal);
        c.record(Cause::Listed, None, 0);
        c.record(Cause::Resync, None, 0);
        assert_eq!(c.priority(), Priority::Low);
        c.record(Cause::Updated, None, 0);
        assert_eq!(c.priority(), Priority::Normal);
    }

    #[test]
    fn every_cause_has_a_name_that_parses_back() {
        for c in Cause::ALL {
            assert_eq!(Cause::parse(c.name()), Some(c));
            assert_eq!(Cause::ALL[c as usize], c);
        }
        assert_eq!(Cause::parse("bogus"), None);
    }

    #[test]
    fn a_key_handed_out_more_than_the_threshold_in_a_window_is_reported_once() {
        let mut h = HotLoops::new(3, 60.0);
        let key: Key = Key::from("ns/a");
        for i in 0..10 {
            h.handed_out(&key, &updated(), i as f64);
        }
        let found = h.take();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].reconciles, 4);
        assert_eq!(found[0].causes[Cause::Updated as usize], 3);
        // Still hot in the next window: no second report.
        for i in 0..10 {
            h.handed_out(&key, &updated(), 60.0 + i as f64);
        }
        assert!(h.take().is_empty());
    }

    #[test]
    fn a_key_is_reported_again_after_a_calm_window() {
        let mut h = HotLoops::new(3, 60.0);
        let key: Key = Key::from("ns/a");
        for i in 0..5 {
            h.handed_out(&key, &updated(), i as f64);
        }
        assert_eq!(h.take().len(), 1);
        h.handed_out(&key, &updated(), 100.0); // a calm window: one hand-out
        for i in 0..5 {
            h.handed_out(&key, &updated(), 200.0 + i as f64);
        }
        assert_eq!(h.take().len(), 1);
        for i in 0..5 {
            h.handed_out(&key, &updated(), 400.0 + i as f64); // after a quiet window
        }
        assert_eq!(h.take().len(), 1);
    }

    #[test]
    fn keys_reconciled_slowly_are_never_reported_and_are_swept() {
        let mut h = HotLoops::new(3, 60.0);
        for i in 0..5000u32 {
            let key: Key = Key::from(format!("ns/{}", i % 2000));
            h.handed_out(&key, &updated(), f64::from(i) * 0.1);
        }
        assert!(h.take().is_empty());
        assert!(h.tracked() <= 2 * FIRST_SWEEP.max(600));
    }

    #[test]
    fn the_keys_of_a_large_relist_are_forgotten_a_window_later() {
        let mut h = HotLoops::new(10, 60.0);
        for i in 0..100_000u32 {
            h.handed_out(&Key::from(format!("ns/{i}")), &updated(), 0.0);
        }
        let key: Key = Key::from("ns/live");
        for i in 0..70 {
            h.handed_out(&key, &updated(), 30.0 + f64::from(i));
        }
        assert!(h.tracked() < 10, "{} keys tracked", h.tracked());
    }

    #[test]
    fn a_threshold_of_zero_turns_detection_off() {
        let mut h = HotLoops::new(0, 60.0);
        let key: Key = Key::from("ns/a");
        for i in 0..100 {
            h.handed_out(&key, &updated(), i as f64 * 0.01);
        }
        assert!(h.take().is_empty());
        assert_eq!(h.tracked(), 0);
    }
}
