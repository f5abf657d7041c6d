//! `WorkQueue` and the rate limiters.
use super::errors::ShutDown;
use crate::queue::{Key, WorkQueue};
use crate::ratelimit::{self, Bucket, ExponentialFailure, MaxOf, RateLimiter, Shared};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use std::sync::{Arc, Mutex};

/// client-go's rate limiter interface. Subclasses only differ in their constructor.
///
/// A limiter's state is shared by every queue it is given to.
#[pyclass(
    subclass,
    frozen,
    module = "trio_controller._native",
    name = "RateLimiter"
)]
pub struct PyRateLimiter {
    pub shared: Shared,
}

impl PyRateLimiter {
    fn new(limiter: Box<dyn RateLimiter>) -> Self {
        PyRateLimiter {
            shared: Arc::new(Mutex::new(limiter)),
        }
    }
}

#[pymethods]
impl PyRateLimiter {
    /// Seconds ``key`` should wait before it is retried; counts one failure.
    fn when(&self, key: &str, now: f64) -> f64 {
        self.shared.clone().when(key, now)
    }

    /// Stop tracking ``key``: its failures are reset.
    fn forget(&self, key: &str) {
        self.shared.clone().forget(key)
    }

    /// Failures counted for ``key`` since it was last forgotten.
    fn num_requeues(&self, key: &str) -> u64 {
        self.shared.num_requeues(key)
    }
}

/// Per-key ``base * 2**failures`` seconds, capped at ``max_delay``.
#[pyclass(extends = PyRateLimiter, frozen, module = "trio_controller._native")]
pub struct ExponentialFailureRateLimiter;

#[pymethods]
impl ExponentialFailureRateLimiter {
    #[new]
    #[pyo3(signature = (base = 0.005, max_delay = 1000.0))]
    fn new(base: f64, max_delay: f64) -> PyResult<PyClassInitializer<Self>> {
        if !(base >= 0.0 && max_delay >= 0.0) {
            return Err(PyValueError::new_err("base and max_delay must be >= 0"));
        }
        Ok(
            PyClassInitializer::from(PyRateLimiter::new(Box::new(ExponentialFailure::new(
                base, max_delay,
            ))))
            .add_subclass(ExponentialFailureRateLimiter),
        )
    }
}

/// One token bucket for all keys (starts full): ``qps`` tokens/s, ``burst`` at most.
#[pyclass(extends = PyRateLimiter, frozen, module = "trio_controller._native")]
pub struct BucketRateLimiter;

#[pymethods]
impl BucketRateLimiter {
    #[new]
    #[pyo3(signature = (qps = 10.0, burst = 100))]
    fn new(qps: f64, burst: u32) -> PyResult<PyClassInitializer<Self>> {
        if !(qps > 0.0 && qps.is_finite()) || burst < 1 {
            return Err(PyValueError::new_err(
                "qps must be a positive number and burst >= 1",
            ));
        }
        Ok(
            PyClassInitializer::from(PyRateLimiter::new(Box::new(Bucket::new(qps, burst))))
                .add_subclass(BucketRateLimiter),
        )
    }
}

/// The longest delay of ``limiters`` (each is asked every time; state is shared).
#[pyclass(extends = PyRateLimiter, frozen, module = "trio_controller._native")]
pub struct MaxOfRateLimiter;

#[pymethods]
impl MaxOfRateLimiter {
    #[new]
    fn new(limiters: Vec<Bound<'_, PyRateLimiter>>) -> PyClassInitializer<Self> {
        let parts: Vec<Box<dyn RateLimiter>> = limiters
            .iter()
            .map(|l| Box::new(l.get().shared.clone()) as Box<dyn RateLimiter>)
            .collect();
        PyClassInitializer::from(PyRateLimiter::new(Box::new(MaxOf::new(parts))))
            .add_subclass(MaxOfRateLimiter)
    }
}

/// max(exponential 5 ms → 1000 s, bucket 10 qps / burst 100), as client-go.
#[pyfunction]
pub fn default_controller_rate_limiter(py: Python<'_>) -> PyResult<Py<MaxOfRateLimiter>> {
    let init = PyClassInitializer::from(PyRateLimiter::new(Box::new(
        ratelimit::default_controller(),
    )))
    .add_subclass(MaxOfRateLimiter);
    Py::new(py, init)
}

/// client-go's rate-limited work queue: fair, stingy, de-duplicating.
///
/// A key added while queued is queued once; a key added while processing is queued
/// again when it is ``done``; a key is never handed out twice before ``done``.
///
/// ``rate_limiter=None`` uses ``default_controller_rate_limiter()``.
#[pyclass(module = "trio_controller._native", name = "WorkQueue")]
pub struct PyWorkQueue {
    pub inner: WorkQueue,
    limiter: Py<PyRateLimiter>,
}

fn key_str<'py>(py: Python<'py>, key: &Key) -> Bound<'py, PyString> {
    PyString::new(py, key)
}

#[pymethods]
impl PyWorkQueue {
    #[new]
    #[pyo3(signature = (rate_limiter = None))]
    fn new(py: Python<'_>, rate_limiter: Option<Bound<'_, PyRateLimiter>>) -> PyResult<Self> {
        let limiter: Py<PyRateLimiter> = match rate_limiter {
            Some(l) => l.unbind(),
            None => default_controller_rate_limiter(py)?
                .into_bound(py)
                .into_super()
                .unbind(),
        };
        let shared = limiter.get().shared.clone();
        Ok(PyWorkQueue {
            inner: WorkQueue::new(Box::new(shared)),
            limiter,
        })
    }

    /// The limiter ``add_rate_limited`` asks.
    #[getter]
    fn rate_limiter(&self, py: Python<'_>) -> Py<PyRateLimiter> {
        self.limiter.clone_ref(py)
    }

    /// Mark ``key`` as needing processing. Ignored after ``shut_down``.
    fn add(&mut self, key: &str, now: f64) {
        self.inner.add(key, now)
    }

    /// ``add`` for each key, in one call.
    fn add_many(&mut self, keys: &Bound<'_, PyAny>, now: f64) -> PyResult<()> {
        for item in keys.try_iter()? {
            let item = item?;
            let key = item.cast::<PyString>()?;
            self.inner.add(key.to_str()?, now);
        }
        Ok(())
    }

    /// The next ready key (now processing), or None if none is ready.
    ///
    /// Raises ``ShutDown`` if the queue is shut down and empty.
    fn get_nowait<'py>(
        &mut self,
        py: Python<'py>,
        now: f64,
    ) -> PyResult<Option<Bound<'py, PyString>>> {
        match self.inner.get(now) {
            Ok(key) => Ok(key.map(|k| key_str(py, &k))),
            Err(_) => Err(ShutDown::new_err("the work queue is shut down")),
        }
    }

    /// Up to ``max`` ready keys. Raises ``ShutDown`` if shut down and empty.
    fn get_many_nowait<'py>(
        &mut self,
        py: Python<'py>,
        max: usize,
        now: f64,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut keys = Vec::with_capacity(max.min(self.inner.len()));
        while keys.len() < max {
            match self.inner.get(now) {
                Ok(Some(k)) => keys.push(key_str(py, &k)),
                Ok(None) => break,
                Err(_) if keys.is_empty() => {
                    return Err(ShutDown::new_err("the work queue is shut down"))
                }
                Err(_) => break,
            }
        }
        PyList::new(py, keys)
    }

    /// End processing of ``key``; re-queues it if it was added meanwhile.
    ///
    /// A key that is not processing is ignored.
    fn done(&mut self, key: &str, now: f64) {
        self.inner.done(key, now);
    }

    /// ``done`` for each key, in one call.
    fn done_many(&mut self, keys: &Bound<'_, PyAny>, now: f64) -> PyResult<()> {
        for item in keys.try_iter()? {
            let item = item?;
            let key = item.cast::<PyString>()?;
            self.inner.done(key.to_str()?, now);
        }
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Keys handed out and not done yet.
    fn processing(&self) -> usize {
        self.inner.processing()
    }

    /// Keys waiting for their ``add_after`` deadline.
    fn delayed(&self) -> usize {
        self.inner.delayed()
    }

    /// Stop accepting keys and drop delayed ones; getters drain what is queued.
    fn shut_down(&mut self) {
        self.inner.shut_down()
    }

    /// Whether ``shut_down`` was called.
    fn shutting_down(&self) -> bool {
        self.inner.shutting_down()
    }

    /// Add ``key`` at ``now + delay`` (at a ``promote``); delay <= 0 adds now.
    ///
    /// If ``key`` is already waiting, the earlier deadline wins.
    fn add_after(&mut self, key: &str, delay: f64, now: f64) {
        self.inner.add_after(key, delay, now)
    }

    /// The earliest deadline of a delayed key.
    fn next_ready_at(&self) -> Option<f64> {
        self.inner.next_ready_at()
    }

    /// Move the delayed keys due at ``now`` into the queue; returns how many.
    fn promote(&mut self, now: f64) -> usize {
        self.inner.promote(now)
    }

    /// ``add_after(key, rate_limiter.when(key, now), now)``.
    fn add_rate_limited(&mut self, key: &str, now: f64) {
        self.inner.add_rate_limited(key, now)
    }

    /// Reset ``key``'s failures in the rate limiter.
    fn forget(&mut self, key: &str) {
        self.inner.forget(key)
    }

    /// ``key``'s failures counted by the rate limiter.
    fn num_requeues(&self, key: &str) -> u64 {
        self.inner.num_requeues(key)
    }

    /// client-go's workqueue metrics.
    ///
    /// Keys: depth, adds, retries, queue_latency_sum, queue_latency_count,
    /// work_duration_sum, work_duration_count, unfinished_work_seconds,
    /// longest_running_processor_seconds (floats), and queue_latency_buckets,
    /// work_duration_buckets: lists of 13 ints, the observations per bucket of
    /// ``WORKQUEUE_BUCKETS`` (the first bound ``>=`` the value) then above the last
    /// bound (+Inf), not cumulative.
    fn metrics<'py>(&self, py: Python<'py>, now: f64) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner.metrics(now);
        let d = PyDict::new(py);
        d.set_item("depth", m.depth as f64)?;
        d.set_item("adds", m.adds as f64)?;
        d.set_item("retries", m.retries as f64)?;
        d.set_item("queue_latency_sum", m.queue_latency_sum)?;
        d.set_item("queue_latency_count", m.queue_latency_count as f64)?;
        d.set_item("queue_latency_buckets", m.queue_latency_buckets.to_vec())?;
        d.set_item("work_duration_sum", m.work_duration_sum)?;
        d.set_item("work_duration_count", m.work_duration_count as f64)?;
        d.set_item("work_duration_buckets", m.work_duration_buckets.to_vec())?;
        d.set_item("unfinished_work_seconds", m.unfinished_work_seconds)?;
        d.set_item(
            "longest_running_processor_seconds",
            m.longest_running_processor_seconds,
        )?;
        Ok(d)
    }
}
