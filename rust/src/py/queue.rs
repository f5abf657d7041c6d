//! `WorkQueue` and the rate limiters.
use super::errors::ShutDown;
use crate::queue::{Cause, Causes, Change, Origin, WorkQueue};
use crate::ratelimit::{self, Bucket, ExponentialFailure, MaxOf, RateLimiter, Shared};
use crate::store::Key;
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

/// client-go's rate-limited work queue: fair, stingy, de-duplicating, with two
/// priorities and reconcile causes.
///
/// A key added while queued is queued once; a key added while processing is queued
/// again when it is ``done``; a key is never handed out twice before ``done``.
///
/// Keys added for "listed" or "resync" wait at low priority behind the others (FIFO
/// within each priority); a queued low key added for any other cause moves up. While
/// both priorities have keys, every ``low_every``-th hand-out serves the oldest low key,
/// so low keys are never starved. ``priorities=False`` queues every key at normal
/// priority (one FIFO).
///
/// Per key the queue records why it was added since it was last handed out (``causes``);
/// with ``hot_loop_threshold`` > 0 it reports keys handed out more than that many times
/// within ``hot_loop_window`` seconds (``take_hot_loops``).
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

fn cause(name: &str) -> PyResult<Cause> {
    Cause::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Cause::ALL.iter().map(|c| c.name()).collect();
        PyValueError::new_err(format!(
            "unknown cause {name:?}: use one of {}",
            known.join(", ")
        ))
    })
}

fn change(name: &str) -> PyResult<Change> {
    match name {
        "added" => Ok(Change::Added),
        "updated" => Ok(Change::Updated),
        "deleted" => Ok(Change::Deleted),
        _ => Err(PyValueError::new_err(format!(
            "unknown change {name:?}: use added, updated or deleted"
        ))),
    }
}

fn counts_dict<'py, T: IntoPyObject<'py> + Copy>(
    py: Python<'py>,
    counts: &[T],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (c, n) in Cause::ALL.iter().zip(counts) {
        d.set_item(c.name(), *n)?;
    }
    Ok(d)
}

fn causes_tuple<'py>(py: Python<'py>, c: &Causes) -> PyResult<Bound<'py, PyAny>> {
    let counts = PyDict::new(py);
    for (cause, n) in Cause::ALL.iter().zip(c.counts) {
        if n > 0 {
            counts.set_item(cause.name(), n)?;
        }
    }
    let related: Vec<(&str, &str)> = c.related().iter().map(|(r, k)| (&**r, &**k)).collect();
    Ok((counts, related, c.retries).into_pyobject(py)?.into_any())
}

#[pymethods]
impl PyWorkQueue {
    #[new]
    #[pyo3(signature = (
        rate_limiter = None,
        *,
        priorities = true,
        low_every = 10,
        hot_loop_threshold = 0,
        hot_loop_window = 60.0,
    ))]
    fn new(
        py: Python<'_>,
        rate_limiter: Option<Bound<'_, PyRateLimiter>>,
        priorities: bool,
        low_every: u32,
        hot_loop_threshold: u32,
        hot_loop_window: f64,
    ) -> PyResult<Self> {
        if low_every < 2 {
            return Err(PyValueError::new_err("low_every must be >= 2"));
        }
        if !(hot_loop_window > 0.0 && hot_loop_window.is_finite()) {
            return Err(PyValueError::new_err(
                "hot_loop_window must be a positive number of seconds",
            ));
        }
        let limiter: Py<PyRateLimiter> = match rate_limiter {
            Some(l) => l.unbind(),
            None => default_controller_rate_limiter(py)?
                .into_bound(py)
                .into_super()
                .unbind(),
        };
        let shared = limiter.get().shared.clone();
        let mut inner = WorkQueue::new(Box::new(shared));
        inner.set_priorities(priorities, low_every);
        inner.set_hot_loop(hot_loop_threshold, hot_loop_window);
        Ok(PyWorkQueue { inner, limiter })
    }

    /// The limiter ``add_rate_limited`` asks.
    #[getter]
    fn rate_limiter(&self, py: Python<'_>) -> Py<PyRateLimiter> {
        self.limiter.clone_ref(py)
    }

    /// Mark ``key`` as needing processing, for ``cause`` (a ``RECONCILE_CAUSES`` name;
    /// "listed" and "resync" queue it at low priority). Ignored after ``shut_down``.
    #[pyo3(signature = (key, now, cause = "manual"))]
    fn add(&mut self, key: &str, now: f64, cause: &str) -> PyResult<()> {
        let cause = self::cause(cause)?;
        self.inner.add_for(key, now, cause);
        Ok(())
    }

    /// ``add`` for each key, in one call.
    #[pyo3(signature = (keys, now, cause = "manual"))]
    fn add_many(&mut self, keys: &Bound<'_, PyAny>, now: f64, cause: &str) -> PyResult<()> {
        let cause = self::cause(cause)?;
        for item in keys.try_iter()? {
            let item = item?;
            let key = item.cast::<PyString>()?;
            self.inner.add_for(key.to_str()?, now, cause);
        }
        Ok(())
    }

    /// Add each of ``keys`` for a change an informer saw: ``change`` is "added",
    /// "updated" or "deleted"; ``listed`` (from a list, relist or snapshot) queues them
    /// at low priority; ``via`` is the related object (resource name, key) whose change
    /// mapped to them, None for the object itself.
    #[pyo3(signature = (keys, now, change, listed = false, via = None))]
    fn add_many_from(
        &mut self,
        keys: &Bound<'_, PyAny>,
        now: f64,
        change: &str,
        listed: bool,
        via: Option<(String, String)>,
    ) -> PyResult<()> {
        let origin = Origin {
            change: self::change(change)?,
            listed,
            via: via.as_ref().map(|(r, k)| (r.as_str(), k.as_str())),
        };
        for item in keys.try_iter()? {
            let item = item?;
            let key = item.cast::<PyString>()?;
            self.inner.add_from_str(key.to_str()?, now, origin);
        }
        Ok(())
    }

    /// Why ``key`` was handed out, while it is processing: ``(counts, related,
    /// retries)``: the count of each cause recorded since it was last handed out (only
    /// causes that occurred), the last few related objects ``(resource, key)`` (oldest
    /// first) and the latest error-retry number. None when ``key`` is not processing.
    fn causes<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .causes(key)
            .map(|c| causes_tuple(py, c))
            .transpose()
    }

    /// The causes of every hand-out so far, summed: a count per ``RECONCILE_CAUSES``
    /// name.
    fn cause_totals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        counts_dict(py, &self.inner.cause_totals())
    }

    /// Keys found in a hot loop since the last call: ``(key, reconciles in the window,
    /// causes summed over it)`` each, every key once until it calms down.
    fn take_hot_loops<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let found = self.inner.take_hot_loops();
        let out = PyList::empty(py);
        for h in found {
            let counts = PyDict::new(py);
            for (cause, n) in Cause::ALL.iter().zip(h.causes) {
                if n > 0 {
                    counts.set_item(cause.name(), n)?;
                }
            }
            out.append((&*h.key, h.reconciles, counts))?;
        }
        Ok(out)
    }

    /// Report keys handed out more than ``threshold`` times within ``window`` seconds
    /// (``take_hot_loops``); 0 turns it off.
    fn set_hot_loop(&mut self, threshold: u32, window: f64) -> PyResult<()> {
        if !(window > 0.0 && window.is_finite()) {
            return Err(PyValueError::new_err(
                "window must be a positive number of seconds",
            ));
        }
        self.inner.set_hot_loop(threshold, window);
        Ok(())
    }

    /// ``priorities=False`` queues every key at normal priority (one FIFO); while both
    /// priorities have keys, every ``low_every``-th hand-out (>= 2) serves a low key.
    #[pyo3(signature = (priorities, low_every = 10))]
    fn set_priorities(&mut self, priorities: bool, low_every: u32) -> PyResult<()> {
        if low_every < 2 {
            return Err(PyValueError::new_err("low_every must be >= 2"));
        }
        self.inner.set_priorities(priorities, low_every);
        Ok(())
    }

    /// Ready keys at low priority.
    fn len_low(&self) -> usize {
        self.inner.len_low()
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
    #[pyo3(signature = (key, delay, now, cause = "requeue_after"))]
    fn add_after(&mut self, key: &str, delay: f64, now: f64, cause: &str) -> PyResult<()> {
        let cause = self::cause(cause)?;
        self.inner.add_after_for(key, delay, now, cause);
        Ok(())
    }

    /// The earliest deadline of a delayed key.
    fn next_ready_at(&self) -> Option<f64> {
        self.inner.next_ready_at()
    }

    /// Move the delayed keys due at ``now`` into the queue; returns how many.
    fn promote(&mut self, now: f64) -> usize {
        self.inner.promote(now)
    }

    /// ``add_after(key, rate_limiter.when(key, now), now)``; ``cause`` "retry" (an
    /// error, recorded with its retry number) or "requeue".
    #[pyo3(signature = (key, now, cause = "retry"))]
    fn add_rate_limited(&mut self, key: &str, now: f64, cause: &str) -> PyResult<()> {
        let cause = self::cause(cause)?;
        self.inner.add_rate_limited_for(key, now, cause);
        Ok(())
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
        for (name, h) in [
            ("queue_latency", &m.queue_latency),
            ("work_duration", &m.work_duration),
        ] {
            d.set_item(format!("{name}_sum"), h.sum)?;
            d.set_item(format!("{name}_count"), h.count as f64)?;
            d.set_item(format!("{name}_buckets"), h.buckets.to_vec())?;
        }
        d.set_item("unfinished_work_seconds", m.unfinished_work_seconds)?;
        d.set_item(
            "longest_running_processor_seconds",
            m.longest_running_processor_seconds,
        )?;
        Ok(d)
    }
}
