//! Rate limiters with client-go `util/workqueue` semantics.
//!
//! A limiter answers "how long should this key wait before it is retried?" given the
//! current time. Time is always an argument (seconds as `f64`); nothing here reads a
//! clock. Delays are rounded down to whole nanoseconds, as Go's `time.Duration` does, so
//! the numbers match client-go for the same call sequence.
use hashbrown::HashMap;
use std::sync::{Arc, Mutex};

/// The three methods of client-go's `RateLimiter` interface.
pub trait RateLimiter: Send + Sync {
    /// How long `key` should wait (seconds) before it is processed again; counts a failure.
    fn when(&mut self, key: &str, now: f64) -> f64;
    /// Stop tracking `key` (its failures are reset).
    fn forget(&mut self, key: &str);
    /// How many times `key` has been asked about since it was last forgotten.
    fn num_requeues(&self, key: &str) -> u64;
}

/// Rounds seconds down to whole nanoseconds, like a Go `time.Duration` conversion.
fn as_go_duration(seconds: f64) -> f64 {
    if !seconds.is_finite() {
        return seconds;
    }
    (seconds * 1e9).floor() / 1e9
}

/// Per-key exponential backoff: `base * 2^failures`, capped at `max_delay`.
#[derive(Debug, Clone)]
pub struct ExponentialFailure {
    base: f64,
    max_delay: f64,
    failures: HashMap<Box<str>, u64>,
}

impl ExponentialFailure {
    pub fn new(base: f64, max_delay: f64) -> Self {
        Self {
            base,
            max_delay,
            failures: HashMap::new(),
        }
    }
}

impl RateLimiter for ExponentialFailure {
    fn when(&mut self, key: &str, _now: f64) -> f64 {
        let exp = match self.failures.get_mut(key) {
            Some(n) => {
                let e = *n;
                *n += 1;
                e
            }
            None => {
                self.failures.insert(key.into(), 1);
                0
            }
        };
        // 2^exp overflows to infinity for large exp, which the cap turns into max_delay.
        let backoff = self.base * 2f64.powi(exp.min(i32::MAX as u64) as i32);
        if backoff.is_nan() || backoff > self.max_delay {
            return self.max_delay;
        }
        as_go_duration(backoff)
    }

    fn forget(&mut self, key: &str) {
        self.failures.remove(key);
    }

    fn num_requeues(&self, key: &str) -> u64 {
        self.failures.get(key).copied().unwrap_or(0)
    }
}

/// One token bucket shared by all keys (golang.org/x/time/rate `Reserve().Delay()`).
/// The bucket starts full; every call takes a token, going into debt when empty.
#[derive(Debug, Clone)]
pub struct Bucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Option<f64>,
}

impl Bucket {
    /// `qps` must be > 0 and `burst` >= 1 (checked by the caller).
    pub fn new(qps: f64, burst: u32) -> Self {
        Self {
            qps,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: None,
        }
    }
}

impl RateLimiter for Bucket {
    fn when(&mut self, _key: &str, now: f64) -> f64 {
        let mut tokens = match self.last {
            None => self.burst,
            Some(last) => {
                let elapsed = (now - last).max(0.0);
                (self.tokens + elapsed * self.qps).min(self.burst)
            }
        };
        tokens -= 1.0;
        let wait = if tokens < 0.0 {
            as_go_duration(-tokens / self.qps)
        } else {
            0.0
        };
        self.last = Some(now);
        self.tokens = tokens;
        wait
    }

    fn forget(&mut self, _key: &str) {}

    fn num_requeues(&self, _key: &str) -> u64 {
        0
    }
}

/// `fast_delay` for the first `max_fast_attempts` failures of a key, then `slow_delay`.
#[derive(Debug, Clone)]
pub struct FastSlow {
    fast_delay: f64,
    slow_delay: f64,
    max_fast_attempts: u64,
    failures: HashMap<Box<str>, u64>,
}

impl FastSlow {
    pub fn new(fast_delay: f64, slow_delay: f64, max_fast_attempts: u64) -> Self {
        Self {
            fast_delay,
            slow_delay,
            max_fast_attempts,
            failures: HashMap::new(),
        }
    }
}

impl RateLimiter for FastSlow {
    fn when(&mut self, key: &str, _now: f64) -> f64 {
        let n = match self.failures.get_mut(key) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                self.failures.insert(key.into(), 1);
                1
            }
        };
        if n <= self.max_fast_attempts {
            self.fast_delay
        } else {
            self.slow_delay
        }
    }

    fn forget(&mut self, key: &str) {
        self.failures.remove(key);
    }

    fn num_requeues(&self, key: &str) -> u64 {
        self.failures.get(key).copied().unwrap_or(0)
    }
}

/// The worst (longest) delay of several limiters; every limiter is asked every time.
pub struct MaxOf {
    limiters: Vec<Box<dyn RateLimiter>>,
}

impl MaxOf {
    pub fn new(limiters: Vec<Box<dyn RateLimiter>>) -> Self {
        Self { limiters }
    }
}

impl RateLimiter for MaxOf {
    fn when(&mut self, key: &str, now: f64) -> f64 {
        let mut worst = 0.0f64;
        for l in &mut self.limiters {
            worst = worst.max(l.when(key, now));
        }
        worst
    }

    fn forget(&mut self, key: &str) {
        for l in &mut self.limiters {
            l.forget(key);
        }
    }

    fn num_requeues(&self, key: &str) -> u64 {
        self.limiters
            .iter()
            .map(|l| l.num_requeues(key))
            .max()
            .unwrap_or(0)
    }
}

/// client-go's `DefaultControllerRateLimiter`: max(exponential 5 ms → 1000 s, bucket 10 qps / 100).
pub fn default_controller() -> MaxOf {
    MaxOf::new(vec![
        Box::new(ExponentialFailure::new(0.005, 1000.0)),
        Box::new(Bucket::new(10.0, 100)),
    ])
}

/// A limiter shared between owners (a Python limiter object and the queues using it).
pub type Shared = Arc<Mutex<Box<dyn RateLimiter>>>;

impl RateLimiter for Shared {
    fn when(&mut self, key: &str, now: f64) -> f64 {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .when(key, now)
    }

    fn forget(&mut self, key: &str) {
        self.lock().unwrap_or_else(|e| e.into_inner()).forget(key)
    }

    fn num_requeues(&self, key: &str) -> u64 {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .num_requeues(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 0.001;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn exponential_doubles_from_base_and_caps_at_max() {
        // client-go TestItemExponentialFailureRateLimiter: base 1 ms, max 1 s.
        let mut l = ExponentialFailure::new(MS, 1.0);
        let expected = [1.0, 2.0, 4.0, 8.0, 16.0];
        for ms in expected {
            assert!(close(l.when("one", 0.0), ms * MS));
        }
        assert_eq!(l.num_requeues("one"), 5);
        assert!(close(l.when("two", 0.0), MS));
        assert!(close(l.when("two", 0.0), 2.0 * MS));
        assert_eq!(l.num_requeues("two"), 2);
        l.forget("one");
        assert_eq!(l.num_requeues("one"), 0);
        assert!(close(l.when("one", 0.0), MS));
    }

    #[test]
    fn exponential_overflow_returns_max_delay() {
        // client-go TestItemExponentialFailureRateLimiterOverFlow.
        let mut l = ExponentialFailure::new(MS, 1000.0);
        for _ in 0..5 {
            l.when("one", 0.0);
        }
        assert!(close(l.when("one", 0.0), 32.0 * MS));
        for _ in 0..1000 {
            l.when("overflow1", 0.0);
        }
        assert_eq!(l.when("overflow1", 0.0), 1000.0);
        let mut l = ExponentialFailure::new(60.0, 3600.0);
        for _ in 0..2 {
            l.when("two", 0.0);
        }
        assert_eq!(l.when("two", 0.0), 240.0);
        for _ in 0..6 {
            l.when("two", 0.0);
        }
        assert_eq!(l.when("two", 0.0), 3600.0);
    }

    #[test]
    fn bucket_allows_burst_then_spaces_by_qps() {
        let mut l = Bucket::new(10.0, 3);
        assert_eq!(l.when("a", 0.0), 0.0);
        assert_eq!(l.when("b", 0.0), 0.0);
        assert_eq!(l.when("c", 0.0), 0.0);
        assert!(close(l.when("d", 0.0), 0.1));
        assert!(close(l.when("e", 0.0), 0.2));
        // After 1 s the debt of 2 tokens is repaid and 3 more (capped at burst) are back.
        assert_eq!(l.when("f", 1.0), 0.0);
        assert_eq!(l.num_requeues("f"), 0);
    }

    #[test]
    fn fast_slow_is_fast_for_the_first_attempts_then_slow() {
        // client-go TestItemFastSlowRateLimiter: 5 ms fast, 10 s slow, 3 fast attempts.
        let mut l = FastSlow::new(5.0 * MS, 10.0, 3);
        for want in [5.0 * MS, 5.0 * MS, 5.0 * MS, 10.0, 10.0] {
            assert_eq!(l.when("one", 0.0), want);
        }
        assert_eq!(l.num_requeues("one"), 5);
        l.forget("one");
        assert_eq!(l.num_requeues("one"), 0);
        assert_eq!(l.when("one", 0.0), 5.0 * MS);
    }

    #[test]
    fn max_of_returns_the_longest_delay_and_forgets_everywhere() {
        // client-go TestMaxOfRateLimiter: max(fast-slow(5 ms, 3 s, 3), exponential(1 ms, 1 s)).
        let mut l = MaxOf::new(vec![
            Box::new(FastSlow::new(5.0 * MS, 3.0, 3)),
            Box::new(ExponentialFailure::new(MS, 1.0)),
        ]);
        for want in [5.0 * MS, 5.0 * MS, 5.0 * MS, 3.0, 3.0] {
            assert!(close(l.when("one", 0.0), want));
        }
        assert_eq!(l.num_requeues("one"), 5);
        assert!(close(l.when("two", 0.0), 5.0 * MS));
        assert!(close(l.when("two", 0.0), 5.0 * MS));
        assert_eq!(l.num_requeues("two"), 2);
        l.forget("one");
        assert_eq!(l.num_requeues("one"), 0);
        assert!(close(l.when("one", 0.0), 5.0 * MS));
    }

    /// The default controller limiter, call by call, with the numbers client-go produces
    /// for the same sequence (computed from client-go's algorithm: 5 ms * 2^n capped at
    /// 1000 s, maxed with a 10 qps / burst 100 token bucket starting full).
    #[test]
    fn default_controller_limiter_matches_client_go_table() {
        let mut l = default_controller();
        // (key, now, expected delay)
        let table: &[(&str, f64, f64)] = &[
            ("a", 0.0, 0.005),
            ("a", 0.0, 0.010),
            ("a", 0.0, 0.020),
            ("b", 0.0, 0.005),
            ("a", 0.0, 0.040),
            ("a", 0.0, 0.080),
            ("a", 0.0, 0.160),
            ("a", 0.0, 0.320),
            ("a", 0.0, 0.640),
            ("a", 0.0, 1.280),
            ("a", 0.0, 2.560),
            ("a", 0.0, 5.120),
            ("a", 0.0, 10.240),
            ("a", 0.0, 20.480),
            ("a", 0.0, 40.960),
            ("a", 0.0, 81.920),
            ("a", 0.0, 163.840),
            ("a", 0.0, 327.680),
            ("a", 0.0, 655.360),
            ("a", 0.0, 1000.0),
            ("a", 0.0, 1000.0),
        ];
        for (i, &(key, now, want)) in table.iter().enumerate() {
            let got = l.when(key, now);
            assert!(
                close(got, want),
                "call {i}: when({key}) = {got}, want {want}"
            );
        }
        assert_eq!(l.num_requeues("a"), 20);
        assert_eq!(l.num_requeues("b"), 1);
    }

    #[test]
    fn default_controller_limiter_bucket_takes_over_after_burst_of_100() {
        let mut l = default_controller();
        // 100 distinct keys at t=0 use the burst: each waits only its first backoff, 5 ms.
        for i in 0..100 {
            assert!(close(l.when(&format!("k{i}"), 0.0), 0.005));
        }
        // The 101st..103rd wait for the bucket: 100 ms, 200 ms, 300 ms.
        assert!(close(l.when("k100", 0.0), 0.1));
        assert!(close(l.when("k101", 0.0), 0.2));
        assert!(close(l.when("k102", 0.0), 0.3));
        // Half a second later 5 tokens came back but 3 were owed: 2 free calls, then debt.
        assert!(close(l.when("k103", 0.5), 0.005));
        assert!(close(l.when("k104", 0.5), 0.005));
        assert!(close(l.when("k105", 0.5), 0.1));
    }

    #[test]
    fn delays_are_whole_nanoseconds_like_go_durations() {
        let mut l = Bucket::new(3.0, 1);
        assert_eq!(l.when("a", 0.0), 0.0);
        // 1/3 s is 333333333 ns in Go.
        assert_eq!(l.when("a", 0.0), 0.333_333_333);
    }

    #[test]
    fn shared_limiter_keeps_one_state_for_all_owners() {
        let shared: Shared = Arc::new(Mutex::new(Box::new(ExponentialFailure::new(MS, 1.0))));
        let mut a = shared.clone();
        let b = shared.clone();
        a.when("x", 0.0);
        a.when("x", 0.0);
        assert_eq!(b.num_requeues("x"), 2);
    }
}
