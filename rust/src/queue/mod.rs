//! The workqueue: client-go's queue + delaying queue + rate-limiting queue in one type,
//! with two priorities and reconcile causes.
//!
//! Fair (FIFO within a priority), stingy (a key is never handed out twice before `done`), de-duplicating
//! (a key queued twice is queued once; a key added while processing is queued again at
//! `done`). Delayed keys wait in a deadline heap until `promote(now)`. Time is always an
//! argument; nothing here reads a clock, sleeps or blocks.
//!
//! Priorities: keys from lists and resyncs (`Cause::priority`) wait at low priority
//! behind live events and requeues, so a live change is not stuck behind a restart's
//! backlog; a queued low key added again for a normal cause moves up. Aging: while both
//! levels have keys, every `low_every`-th hand-out (default `LOW_EVERY`) serves the
//! oldest low key, so low keys get at least that share and are never starved.
//!
//! Causes: per key, why it was added since it was last handed out (`Causes`), readable
//! while it is processing; totals per cause; keys handed out in a hot loop (`HotLoops`).
mod causes;

pub use causes::{Cause, Causes, HotLoop, HotLoops, Priority, CAUSES, RELATED_KEPT};

use crate::ratelimit::RateLimiter;
use hashbrown::hash_map::EntryRef;
use hashbrown::HashMap;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use crate::store::Key;

/// `get` on a queue that is shut down and empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutDown;

/// How many finite bucket bounds the duration histograms have.
pub const BUCKETS: usize = 12;

/// controller-runtime's workqueue histogram bounds, in seconds:
/// `prometheus.ExponentialBuckets(10e-9, 10, 12)`, which multiplies 10e-9 by 10 eleven
/// times in float64, so these are Go's exact values (`9.999999999999999e-06`, not 1e-05:
/// the `le` labels a Go controller exports).
pub const BUCKET_BOUNDS: [f64; BUCKETS] = [
    1e-08,
    1e-07,
    1e-06,
    9.999999999999999e-06,
    9.999999999999999e-05,
    0.001,
    0.01,
    0.1,
    1.0,
    10.0,
    100.0,
    1000.0,
];

/// A duration histogram: sum, count and per-bucket counts, not cumulative. Bucket `i`
/// counts the observations `v` with `BUCKET_BOUNDS[i - 1] < v <= BUCKET_BOUNDS[i]` (the
/// first bound `>= v`, as Prometheus' `le`); bucket `BUCKETS` counts those above every
/// bound (+Inf).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub sum: f64,
    pub count: u64,
    pub buckets: [u64; BUCKETS + 1],
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        self.sum += seconds;
        self.count += 1;
        // NaN compares false: it lands in the first bucket (callers pass max(0.0) values).
        let at = BUCKET_BOUNDS.partition_point(|&bound| bound < seconds);
        self.buckets[at] += 1;
    }
}

/// Counters named as client-go's workqueue metrics name them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub depth: u64,
    pub adds: u64,
    pub retries: u64,
    /// Dirty → handed out.
    pub queue_latency: Histogram,
    /// Handed out → done.
    pub work_duration: Histogram,
    pub unfinished_work_seconds: f64,
    pub longest_running_processor_seconds: f64,
}

#[derive(Debug)]
struct Waiting {
    at: f64,
    seq: u64,
    key: Key,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.total_cmp(&other.at).then(self.seq.cmp(&other.seq))
    }
}

/// A key's place in client-go's dirty and processing sets (at least one is set).
#[derive(Debug)]
struct State {
    /// When it became dirty (for queue latency).
    dirty_since: Option<f64>,
    /// When it was handed out (for work duration).
    processing_since: Option<f64>,
    /// The priority it is (or will be, after `done`) queued at.
    priority: Priority,
    /// The ticket of its live entry in a ready queue; 0 when not queued.
    ticket: u64,
    /// Why it was added since it was last handed out.
    pending: Causes,
    /// Why it was handed out (while processing).
    taken: Causes,
}

/// A delayed key: its deadline, insertion order and the causes it will be added for.
#[derive(Debug)]
struct Delayed {
    at: f64,
    seq: u64,
    causes: Causes,
}

/// What changed, as the informer core saw it, when it enqueues a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Updated,
    Deleted,
}

/// Where a key the informer core enqueues comes from: the seam between the core's
/// fan-out and the queue's priorities and reconcile causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    pub change: Change,
    /// From an initial list, a relist or a snapshot rather than a live watch event.
    pub listed: bool,
    /// Through a related object (an owned or watched resource): its resource's name as
    /// the controller shows it (e.g. `ConfigMap`) and its key. None: the object itself.
    pub via: Option<(&'a str, &'a str)>,
}

/// Why an add happens: one cause, or the causes a delayed key collected.
enum Reason<'a> {
    One(Cause, Option<(&'a str, &'a str)>, u32),
    Merged(Causes),
}

/// How often low-priority keys are served while normal ones wait, by default: every
/// 10th hand-out (controller-runtime #3496: low priority must not starve).
pub const LOW_EVERY: u32 = 10;

pub struct WorkQueue {
    /// Ready keys per priority (`Priority as usize`), in order, with the ticket of the
    /// entry. A key moved up from low to normal leaves a stale low entry (its ticket no
    /// longer matches) that `get` skips; normal entries are never stale.
    ready: [VecDeque<(Key, u64)>; 2],
    /// Live entries in `ready` (keys queued: dirty and not processing).
    queued: usize,
    tickets: u64,
    /// Normal hand-outs in a row while low keys waited.
    streak: u32,
    /// Every `low_every`-th hand-out goes to a low key while both levels wait (>= 2).
    low_every: u32,
    /// False: every key is queued at normal priority (plain FIFO).
    priorities: bool,
    /// Every key that is dirty (needs processing) or processing (handed out, not done),
    /// or both: client-go's two sets in one map, so each call hashes a key once.
    items: HashMap<Key, State>,
    dirty: usize,
    processing: usize,
    shutting_down: bool,
    /// Delayed keys: a min-heap on (deadline, insertion order); entries whose `seq` no
    /// longer matches `waiting_for` were superseded by an earlier deadline.
    waiting: BinaryHeap<Reverse<Waiting>>,
    waiting_for: HashMap<Key, Delayed>,
    seq: u64,
    limiter: Box<dyn RateLimiter>,
    adds: u64,
    retries: u64,
    /// From becoming dirty to being handed out.
    latency: Histogram,
    /// From being handed out to `done`.
    work: Histogram,
    /// Causes of every hand-out, summed (per `Cause::ALL`).
    cause_totals: [u64; CAUSES],
    hot: HotLoops,
}

impl WorkQueue {
    pub fn new(limiter: Box<dyn RateLimiter>) -> Self {
        Self {
            ready: [VecDeque::new(), VecDeque::new()],
            queued: 0,
            tickets: 0,
            streak: 0,
            low_every: LOW_EVERY,
            priorities: true,
            items: HashMap::new(),
            dirty: 0,
            processing: 0,
            shutting_down: false,
            waiting: BinaryHeap::new(),
            waiting_for: HashMap::new(),
            seq: 0,
            limiter,
            adds: 0,
            retries: 0,
            latency: Histogram::default(),
            work: Histogram::default(),
            cause_totals: [0; CAUSES],
            hot: HotLoops::new(0, 60.0),
        }
    }

    /// Serve a low key every `every`-th hand-out while normal keys wait (>= 2);
    /// `priorities` false queues every key at normal priority (plain FIFO).
    pub fn set_priorities(&mut self, priorities: bool, every: u32) {
        self.priorities = priorities;
        self.low_every = every.max(2);
    }

    /// Report keys handed out more than `threshold` times in `window` seconds (0: off).
    pub fn set_hot_loop(&mut self, threshold: u32, window: f64) {
        self.hot = HotLoops::new(threshold, window);
    }

    /// Marks `key` as needing processing (cause `Manual`). Ignored after `shut_down`.
    pub fn add(&mut self, key: &str, now: f64) {
        self.add_inner(key, None, now, Reason::One(Cause::Manual, None, 0))
    }

    /// `add` for a key already shared elsewhere (e.g. by the store): no copy is made.
    pub fn add_shared(&mut self, key: &Key, now: f64) {
        self.add_inner(key, Some(key), now, Reason::One(Cause::Manual, None, 0))
    }

    /// `add` for `cause` (its priority: low for `Listed` and `Resync`).
    pub fn add_for(&mut self, key: &str, now: f64, cause: Cause) {
        self.add_inner(key, None, now, Reason::One(cause, None, 0))
    }

    /// `add_shared` for a key the informer core enqueues, saying where it came from:
    /// `listed` keys are queued at low priority, the rest at normal; the cause is
    /// recorded (`Listed`, `Related` with `via`, else the change).
    pub fn add_from(&mut self, key: &Key, now: f64, origin: Origin<'_>) {
        let reason = Reason::One(Cause::of(&origin), origin.via, 0);
        self.add_inner(key, Some(key), now, reason)
    }

    /// `add_from` for a key not shared with the store (an owner or mapped key).
    pub fn add_from_str(&mut self, key: &str, now: f64, origin: Origin<'_>) {
        let reason = Reason::One(Cause::of(&origin), origin.via, 0);
        self.add_inner(key, None, now, reason)
    }

    fn add_inner(&mut self, key: &str, shared: Option<&Key>, now: f64, reason: Reason<'_>) {
        if self.shutting_down {
            return;
        }
        let mut priority = match &reason {
            Reason::One(cause, ..) => cause.priority(),
            Reason::Merged(causes) => causes.priority(),
        };
        if !self.priorities {
            priority = Priority::Normal;
        }
        let record = |causes: &mut Causes| match reason {
            Reason::One(cause, via, retries) => causes.record(cause, via, retries),
            Reason::Merged(more) => causes.merge(more),
        };
        match self.items.entry_ref(key) {
            EntryRef::Occupied(mut e) => {
                let state = e.get_mut();
                record(&mut state.pending);
                if state.dirty_since.is_some() {
                    if priority > state.priority {
                        // Moves up: a fresh normal entry; the low one goes stale.
                        state.priority = priority;
                        if state.ticket != 0 {
                            self.tickets += 1;
                            state.ticket = self.tickets;
                            let key = e.key().clone();
                            self.ready[priority as usize].push_back((key, self.tickets));
                        }
                    }
                    return;
                }
                // Processing: it goes back into the queue at `done`.
                state.dirty_since = Some(now);
                state.priority = priority;
            }
            EntryRef::Vacant(v) => {
                let owned = shared.cloned().unwrap_or_else(|| Arc::from(key));
                self.tickets += 1;
                let mut state = State {
                    dirty_since: Some(now),
                    processing_since: None,
                    priority,
                    ticket: self.tickets,
                    pending: Causes::default(),
                    taken: Causes::default(),
                };
                record(&mut state.pending);
                let e = v.insert_entry_with_key(owned, state);
                self.ready[priority as usize].push_back((e.key().clone(), self.tickets));
                self.queued += 1;
            }
        }
        self.adds += 1;
        self.dirty += 1;
    }

    /// The next ready key (now processing), `Ok(None)` if none is ready, or `ShutDown`
    /// if the queue is shut down and empty. Normal keys first, but while both levels
    /// have keys every `low_every`-th hand-out serves the oldest low key.
    pub fn get(&mut self, now: f64) -> Result<Option<Key>, ShutDown> {
        // A delayed key already due is ready: it must not lose to a lower-priority key
        // because the delay pump has not run yet at this instant.
        self.promote(now);
        if self.queued == 0 {
            return if self.shutting_down {
                Err(ShutDown)
            } else {
                Ok(None)
            };
        }
        let normal = self.ready[Priority::Normal as usize].len();
        let low_waiting = self.queued > normal;
        let level = if normal == 0 || (low_waiting && self.streak + 1 >= self.low_every) {
            Priority::Low
        } else {
            Priority::Normal
        };
        self.streak = match level {
            Priority::Low => 0,
            Priority::Normal if low_waiting => self.streak + 1,
            Priority::Normal => 0,
        };
        while let Some((key, ticket)) = self.ready[level as usize].pop_front() {
            let Some(state) = self.items.get_mut(&key) else {
                continue;
            };
            if state.ticket != ticket {
                continue; // moved up to normal: a stale low entry
            }
            state.ticket = 0;
            self.queued -= 1;
            if let Some(added) = state.dirty_since.take() {
                self.latency.observe((now - added).max(0.0));
                self.dirty -= 1;
            }
            state.processing_since = Some(now);
            state.taken = std::mem::take(&mut state.pending);
            for (total, n) in self.cause_totals.iter_mut().zip(state.taken.counts) {
                *total += u64::from(n);
            }
            self.hot.handed_out(&key, &state.taken, now);
            self.processing += 1;
            return Ok(Some(key));
        }
        // Unreachable: `queued` counts live entries and normal entries are never stale.
        debug_assert!(false, "no live entry at the chosen level");
        self.queued = 0;
        Ok(None)
    }

    /// Why `key` was handed out, while it is processing.
    pub fn causes(&self, key: &str) -> Option<&Causes> {
        self.items
            .get(key)
            .filter(|s| s.processing_since.is_some())
            .map(|s| &s.taken)
    }

    /// Causes of every hand-out so far, summed, in `Cause::ALL` order.
    pub fn cause_totals(&self) -> [u64; CAUSES] {
        self.cause_totals
    }

    /// Keys found in a hot loop since the last call.
    pub fn take_hot_loops(&mut self) -> Vec<HotLoop> {
        self.hot.take()
    }

    /// Ends processing of `key`; if it was added meanwhile it is queued again.
    /// Returns false (and does nothing) if `key` was not processing. (client-go would
    /// queue a dirty key a second time here; we keep the queue stingy instead.)
    pub fn done(&mut self, key: &str, now: f64) -> bool {
        let EntryRef::Occupied(mut e) = self.items.entry_ref(key) else {
            return false;
        };
        let state = e.get_mut();
        let Some(started) = state.processing_since.take() else {
            return false;
        };
        self.work.observe((now - started).max(0.0));
        self.processing -= 1;
        if state.dirty_since.is_some() {
            state.taken = Causes::default();
            self.tickets += 1;
            state.ticket = self.tickets;
            let level = state.priority as usize;
            self.ready[level].push_back((e.key().clone(), self.tickets));
            self.queued += 1;
        } else {
            e.remove();
        }
        true
    }

    /// Ready keys: queued, not delayed and not processing.
    pub fn len(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Ready keys at low priority.
    pub fn len_low(&self) -> usize {
        self.queued - self.ready[Priority::Normal as usize].len()
    }

    /// Keys handed out and not done yet.
    pub fn processing(&self) -> usize {
        self.processing
    }

    /// Delayed keys not yet due.
    pub fn delayed(&self) -> usize {
        self.waiting_for.len()
    }

    /// Stops accepting keys; delayed keys are dropped; `get` drains what is queued and
    /// then reports `ShutDown`.
    pub fn shut_down(&mut self) {
        self.shutting_down = true;
        self.waiting.clear();
        self.waiting_for.clear();
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Adds `key` once `delay` seconds have passed (at a `promote`). A delay <= 0 (or NaN)
    /// adds now. If `key` is already waiting, the earlier deadline wins.
    pub fn add_after(&mut self, key: &str, delay: f64, now: f64) {
        self.add_after_for(key, delay, now, Cause::RequeueAfter)
    }

    /// `add_after` for `cause`.
    pub fn add_after_for(&mut self, key: &str, delay: f64, now: f64, cause: Cause) {
        let retries = if cause == Cause::Retry {
            u32::try_from(self.limiter.num_requeues(key)).unwrap_or(u32::MAX)
        } else {
            0
        };
        self.add_after_inner(key, delay, now, cause, retries)
    }

    fn add_after_inner(&mut self, key: &str, delay: f64, now: f64, cause: Cause, retries: u32) {
        if self.shutting_down {
            return;
        }
        self.retries += 1;
        if delay.is_nan() || delay <= 0.0 {
            self.add_inner(key, None, now, Reason::One(cause, None, retries));
            return;
        }
        let at = now + delay;
        if let Some(d) = self.waiting_for.get_mut(key) {
            d.causes.record(cause, None, retries);
            if d.at <= at {
                return;
            }
        }
        self.seq += 1;
        let key: Key = match self.waiting_for.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => Arc::from(key),
        };
        let causes = match self.waiting_for.remove(&key) {
            Some(d) => d.causes,
            None => {
                let mut c = Causes::default();
                c.record(cause, None, retries);
                c
            }
        };
        self.waiting_for.insert(
            key.clone(),
            Delayed {
                at,
                seq: self.seq,
                causes,
            },
        );
        self.waiting.push(Reverse(Waiting {
            at,
            seq: self.seq,
            key,
        }));
        self.drop_superseded();
    }

    /// Pops heap entries that a later `add_after` superseded, so the top is live.
    fn drop_superseded(&mut self) {
        while let Some(Reverse(top)) = self.waiting.peek() {
            match self.waiting_for.get(&top.key) {
                Some(d) if d.seq == top.seq => break,
                _ => {
                    self.waiting.pop();
                }
            }
        }
    }

    /// The earliest deadline of a delayed key.
    pub fn next_ready_at(&self) -> Option<f64> {
        self.waiting.peek().map(|Reverse(w)| w.at)
    }

    /// Adds every delayed key whose deadline is <= `now`, earliest first; returns how many.
    pub fn promote(&mut self, now: f64) -> usize {
        let mut moved = 0;
        while let Some(Reverse(top)) = self.waiting.peek() {
            if top.at > now {
                break;
            }
            let Some(Reverse(w)) = self.waiting.pop() else {
                break;
            };
            if let Some(d) = self.waiting_for.remove(&w.key) {
                self.add_inner(&w.key, Some(&w.key), now, Reason::Merged(d.causes));
            }
            moved += 1;
            self.drop_superseded();
        }
        moved
    }

    /// `add_after(key, limiter.when(key, now), now)`, cause `Retry`.
    pub fn add_rate_limited(&mut self, key: &str, now: f64) {
        self.add_rate_limited_for(key, now, Cause::Retry)
    }

    /// `add_rate_limited` for `cause` (`Retry` or `Requeue`).
    pub fn add_rate_limited_for(&mut self, key: &str, now: f64, cause: Cause) {
        // client-go asks the limiter even when shutting down; so do we.
        let delay = self.limiter.when(key, now);
        let retries = u32::try_from(self.limiter.num_requeues(key)).unwrap_or(u32::MAX);
        self.add_after_inner(key, delay, now, cause, retries);
    }

    pub fn forget(&mut self, key: &str) {
        self.limiter.forget(key);
    }

    pub fn num_requeues(&self, key: &str) -> u64 {
        self.limiter.num_requeues(key)
    }

    pub fn metrics(&self, now: f64) -> Metrics {
        let mut unfinished = 0.0;
        let mut longest = 0.0f64;
        for started in self.items.values().filter_map(|s| s.processing_since) {
            let d = (now - started).max(0.0);
            unfinished += d;
            longest = longest.max(d);
        }
        Metrics {
            depth: self.dirty as u64,
            adds: self.adds,
            retries: self.retries,
            queue_latency: self.latency.clone(),
            work_duration: self.work.clone(),
            unfinished_work_seconds: unfinished,
            longest_running_processor_seconds: longest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::{default_controller, ExponentialFailure};

    fn queue() -> WorkQueue {
        WorkQueue::new(Box::new(default_controller()))
    }

    fn get(q: &mut WorkQueue) -> Option<String> {
        q.get(0.0).unwrap().map(|k| k.to_string())
    }

    #[test]
    fn keys_come_out_in_the_order_they_went_in() {
        let mut q = queue();
        for k in ["a", "b", "c"] {
            q.add(k, 0.0);
        }
        assert_eq!(q.len(), 3);
        assert_eq!(get(&mut q).as_deref(), Some("a"));
        assert_eq!(get(&mut q).as_deref(), Some("b"));
        assert_eq!(get(&mut q).as_deref(), Some("c"));
        assert_eq!(get(&mut q), None);
    }

    #[test]
    fn a_key_added_twice_while_queued_is_queued_once() {
        let mut q = queue();
        q.add("a", 0.0);
        q.add("b", 0.0);
        q.add("a", 0.0);
        assert_eq!(q.len(), 2);
        assert_eq!(get(&mut q).as_deref(), Some("a"));
        assert_eq!(get(&mut q).as_deref(), Some("b"));
        assert_eq!(get(&mut q), None);
    }

    #[test]
    fn a_key_is_never_handed_to_two_workers_at_once() {
        let mut q = queue();
        q.add("a", 0.0);
        assert_eq!(get(&mut q).as_deref(), Some("a"));
        q.add("a", 0.0);
        assert_eq!(q.len(), 0);
        assert_eq!(get(&mut q), None);
        assert_eq!(q.processing(), 1);
    }

    #[test]
    fn a_key_added_while_processing_is_processed_again_after_done() {
        let mut q = queue();
        q.add("a", 0.0);
        get(&mut q);
        q.add("a", 0.0);
        q.add("a", 0.0);
        assert!(q.done("a", 0.0));
        assert_eq!(q.len(), 1);
        assert_eq!(get(&mut q).as_deref(), Some("a"));
        assert!(q.done("a", 0.0));
        assert_eq!(get(&mut q), None);
    }

    #[test]
    fn done_for_a_key_that_is_not_processing_does_nothing() {
        let mut q = queue();
        q.add("a", 0.0);
        assert!(!q.done("a", 0.0));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn shut_down_drains_queued_keys_then_reports_shutdown() {
        let mut q = queue();
        q.add("a", 0.0);
        q.add_after("late", 1.0, 0.0);
        q.shut_down();
        q.add("b", 0.0);
        assert!(q.shutting_down());
        assert_eq!(get(&mut q).as_deref(), Some("a"));
        assert_eq!(q.get(0.0), Err(ShutDown));
        assert_eq!(q.next_ready_at(), None);
        assert_eq!(q.promote(10.0), 0);
    }

    #[test]
    fn add_after_waits_for_promote_at_the_deadline() {
        let mut q = queue();
        q.add_after("a", 1.0, 10.0);
        assert_eq!(q.len(), 0);
        assert_eq!(q.next_ready_at(), Some(11.0));
        assert_eq!(q.promote(10.999), 0);
        assert_eq!(q.promote(11.0), 1);
        assert_eq!(q.next_ready_at(), None);
        assert_eq!(get(&mut q).as_deref(), Some("a"));
    }

    #[test]
    fn add_after_with_no_delay_adds_now() {
        let mut q = queue();
        q.add_after("a", 0.0, 0.0);
        q.add_after("b", -1.0, 0.0);
        q.add_after("c", f64::NAN, 0.0);
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn the_earlier_deadline_wins_for_the_same_key() {
        let mut q = queue();
        q.add_after("a", 5.0, 0.0);
        q.add_after("a", 2.0, 0.0);
        q.add_after("a", 9.0, 0.0);
        assert_eq!(q.next_ready_at(), Some(2.0));
        assert_eq!(q.delayed(), 1);
        assert_eq!(q.promote(2.0), 1);
        assert_eq!(q.next_ready_at(), None);
        assert_eq!(q.promote(100.0), 0);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn delayed_keys_are_promoted_earliest_first() {
        let mut q = queue();
        q.add_after("late", 3.0, 0.0);
        q.add_after("early", 1.0, 0.0);
        q.add_after("middle", 2.0, 0.0);
        assert_eq!(q.promote(5.0), 3);
        assert_eq!(get(&mut q).as_deref(), Some("early"));
        assert_eq!(get(&mut q).as_deref(), Some("middle"));
        assert_eq!(get(&mut q).as_deref(), Some("late"));
    }

    #[test]
    fn a_promoted_key_that_is_already_queued_stays_queued_once() {
        let mut q = queue();
        q.add("a", 0.0);
        q.add_after("a", 1.0, 0.0);
        q.promote(1.0);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn add_rate_limited_backs_off_exponentially_until_forget() {
        let mut q = WorkQueue::new(Box::new(ExponentialFailure::new(1.0, 100.0)));
        q.add_rate_limited("a", 0.0);
        assert_eq!(q.next_ready_at(), Some(1.0));
        q.promote(1.0);
        get(&mut q);
        q.done("a", 1.0);
        q.add_rate_limited("a", 1.0);
        assert_eq!(q.next_ready_at(), Some(3.0));
        assert_eq!(q.num_requeues("a"), 2);
        q.forget("a");
        assert_eq!(q.num_requeues("a"), 0);
    }

    #[test]
    fn metrics_count_adds_latency_work_and_retries() {
        let mut q = queue();
        q.add("a", 0.0);
        q.add("b", 1.0);
        q.add("a", 2.0);
        let m = q.metrics(2.0);
        assert_eq!((m.depth, m.adds), (2, 2));
        q.get(3.0).unwrap();
        let m = q.metrics(7.0);
        assert_eq!(m.depth, 1);
        assert_eq!((m.queue_latency.sum, m.queue_latency.count), (3.0, 1));
        assert_eq!(m.unfinished_work_seconds, 4.0);
        assert_eq!(m.longest_running_processor_seconds, 4.0);
        q.done("a", 8.0);
        q.add_after("c", 1.0, 8.0);
        let m = q.metrics(8.0);
        assert_eq!((m.work_duration.sum, m.work_duration.count), (5.0, 1));
        assert_eq!(m.unfinished_work_seconds, 0.0);
        assert_eq!(m.retries, 1);
    }

    #[test]
    fn the_bucket_bounds_are_go_exponential_buckets_from_10e_minus_9_by_10() {
        let mut x = 10e-9f64;
        for bound in BUCKET_BOUNDS {
            assert_eq!(bound.to_bits(), x.to_bits(), "{bound} vs {x}");
            x *= 10.0;
        }
    }

    #[test]
    fn an_observation_counts_in_the_first_bucket_whose_bound_is_at_least_it() {
        let mut h = Histogram::default();
        for v in [
            0.0,
            1e-08,
            1.1e-08,
            1e-05,
            0.5,
            1.0,
            1000.0,
            1000.5,
            f64::INFINITY,
        ] {
            h.observe(v);
        }
        let mut want = [0u64; BUCKETS + 1];
        want[0] = 2; // 0 and exactly 1e-08
        want[1] = 1; // 1.1e-08
        want[4] = 1; // 1e-05 is above Go's 9.999999999999999e-06
        want[8] = 2; // 0.5 and exactly 1
        want[11] = 1; // exactly 1000
        want[12] = 2; // above 1000: +Inf
        assert_eq!(h.buckets, want);
        assert_eq!(h.count, 9);
    }

    #[test]
    fn metrics_count_queue_latency_and_work_duration_per_bucket() {
        let mut q = queue();
        q.add("a", 0.0);
        q.add("b", 0.0);
        q.get(0.05).unwrap(); // a waited 0.05 s
        q.get(20.0).unwrap(); // b waited 20 s
        q.done("a", 0.05 + 2e-6); // a worked 2 µs
        q.done("b", 5000.0); // b worked 4980 s
        let m = q.metrics(5000.0);
        let mut latency = [0u64; BUCKETS + 1];
        latency[7] = 1; // 0.05 <= 0.1
        latency[10] = 1; // 20 <= 100
        assert_eq!(m.queue_latency.buckets, latency);
        let mut work = [0u64; BUCKETS + 1];
        work[3] = 1; // 1e-06 < 2e-06 <= 9.999999999999999e-06
        work[12] = 1; // 4980 > 1000: +Inf
        assert_eq!(m.work_duration.buckets, work);
        assert_eq!((m.queue_latency.count, m.work_duration.count), (2, 2));
    }

    fn listed(q: &mut WorkQueue, key: &str) {
        let origin = Origin {
            change: Change::Added,
            listed: true,
            via: None,
        };
        q.add_from(&Arc::from(key), 0.0, origin);
    }

    fn live(q: &mut WorkQueue, key: &str) {
        let origin = Origin {
            change: Change::Updated,
            listed: false,
            via: None,
        };
        q.add_from(&Arc::from(key), 0.0, origin);
    }

    #[test]
    fn a_live_change_is_handed_out_before_a_listed_backlog() {
        let mut q = queue();
        for i in 0..5 {
            listed(&mut q, &format!("l{i}"));
        }
        live(&mut q, "x");
        assert_eq!(q.len(), 6);
        assert_eq!(q.len_low(), 5);
        assert_eq!(get(&mut q).as_deref(), Some("x"));
        let rest: Vec<_> = (0..5).filter_map(|_| get(&mut q)).collect();
        assert_eq!(rest, ["l0", "l1", "l2", "l3", "l4"]);
    }

    #[test]
    fn a_listed_key_added_again_by_a_live_event_moves_up_once() {
        let mut q = queue();
        listed(&mut q, "a");
        listed(&mut q, "b");
        live(&mut q, "b");
        assert_eq!(q.len(), 2);
        assert_eq!(get(&mut q).as_deref(), Some("b"));
        assert_eq!(get(&mut q).as_deref(), Some("a"));
        assert_eq!(get(&mut q), None);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn a_live_key_added_again_by_a_list_stays_at_normal_priority() {
        let mut q = queue();
        listed(&mut q, "a");
        live(&mut q, "b");
        listed(&mut q, "b");
        assert_eq!(q.len_low(), 1);
        assert_eq!(get(&mut q).as_deref(), Some("b"));
    }

    #[test]
    fn low_keys_get_every_tenth_hand_out_while_normal_keys_wait() {
        let mut q = queue();
        for i in 0..3 {
            listed(&mut q, &format!("low{i}"));
        }
        for i in 0..30 {
            live(&mut q, &format!("n{i:02}"));
        }
        let order: Vec<String> = (0..33).filter_map(|_| get(&mut q)).collect();
        assert_eq!(order[9], "low0");
        assert_eq!(order[19], "low1");
        assert_eq!(order[29], "low2");
        assert!(order[..9].iter().all(|k| k.starts_with('n')));
        assert_eq!(order.len(), 33);
    }

    #[test]
    fn without_priorities_the_queue_is_one_fifo() {
        let mut q = queue();
        q.set_priorities(false, LOW_EVERY);
        listed(&mut q, "a");
        live(&mut q, "b");
        assert_eq!(q.len_low(), 0);
        assert_eq!(get(&mut q).as_deref(), Some("a"));
    }

    #[test]
    fn a_key_added_while_processing_is_requeued_at_its_new_priority() {
        let mut q = queue();
        listed(&mut q, "a");
        listed(&mut q, "b");
        assert_eq!(get(&mut q).as_deref(), Some("a"));
        listed(&mut q, "a");
        live(&mut q, "a");
        q.done("a", 0.0);
        assert_eq!(q.len_low(), 1);
        assert_eq!(get(&mut q).as_deref(), Some("a"));
        assert_eq!(get(&mut q).as_deref(), Some("b"));
    }

    #[test]
    fn the_causes_since_a_key_was_last_taken_are_readable_while_it_is_processing() {
        let mut q = queue();
        live(&mut q, "a");
        live(&mut q, "a");
        let via = Origin {
            change: Change::Updated,
            listed: false,
            via: Some(("ConfigMap", "ns/cm")),
        };
        q.add_from(&Arc::from("a"), 0.0, via);
        assert!(q.causes("a").is_none());
        assert_eq!(get(&mut q).as_deref(), Some("a"));
        let c = q.causes("a").unwrap();
        assert_eq!(c.counts[Cause::Updated as usize], 2);
        assert_eq!(c.counts[Cause::Related as usize], 1);
        assert_eq!(&*c.related()[0].0, "ConfigMap");
        assert_eq!(&*c.related()[0].1, "ns/cm");
        q.add_after("a", 1.0, 0.0);
        q.promote(1.0);
        q.done("a", 1.0);
        get(&mut q);
        let c = q.causes("a").unwrap();
        assert_eq!(c.counts[Cause::RequeueAfter as usize], 1);
        assert_eq!(c.counts[Cause::Updated as usize], 0);
        assert_eq!(q.cause_totals()[Cause::Updated as usize], 2);
        assert_eq!(q.cause_totals()[Cause::RequeueAfter as usize], 1);
    }

    #[test]
    fn an_error_retry_records_its_number() {
        let mut q = WorkQueue::new(Box::new(ExponentialFailure::new(1.0, 100.0)));
        q.add_rate_limited("a", 0.0);
        q.add_rate_limited("a", 0.0);
        q.promote(10.0);
        get(&mut q);
        let c = q.causes("a").unwrap();
        assert_eq!((c.counts[Cause::Retry as usize], c.retries), (2, 2));
    }

    #[test]
    fn a_key_handed_out_in_a_hot_loop_is_reported_once() {
        let mut q = queue();
        q.set_hot_loop(3, 60.0);
        for i in 0..8 {
            live(&mut q, "a");
            q.get(f64::from(i)).unwrap();
            q.done("a", f64::from(i));
        }
        let hot = q.take_hot_loops();
        assert_eq!(hot.len(), 1);
        assert_eq!((&*hot[0].key, hot[0].reconciles), ("a", 4));
        assert!(q.take_hot_loops().is_empty());
    }
}
