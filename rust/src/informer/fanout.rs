//! The fan-out: every change the informer core applies goes, in the same call, to each
//! target: a queue (its own key), a queue through an owner mapping (the controller
//! owner's key), either behind predicates, and a *changes* buffer for Python event
//! handlers (client-go's ResourceEventHandler: add; update with old and new; delete
//! with the last state).
//!
//! ```text
//! apply (a watch event) ┐                ┌▶ queue        add_from(key, Origin{change, listed, via})
//! relist (a list)       ┴▶ Fanout::change ┼▶ owner queue  add_from(owner, Origin{.., via: (source, key)})
//!                                         └▶ changes      (type, key, old bytes, new bytes)
//! ```
//! An update (the key was cached) reaches a queue only if it passes the queue's
//! predicates; adds and deletes always do.
use super::predicate::{update_passes, Check, Predicates};
use crate::owner::OwnerMapping;
use crate::queue::{Change, Origin, WorkQueue};
use crate::store::{Entry, Key, Store, StoreError};
use std::sync::Arc;

/// One queue the core feeds.
pub struct QueueTarget<'a> {
    pub queue: &'a mut WorkQueue,
    /// Enqueue the controller owner's key (of this kind) instead of the object's.
    pub owner: Option<&'a OwnerMapping>,
    pub predicates: Predicates,
    pub check: Option<&'a mut Check<'a>>,
}

impl<'a> QueueTarget<'a> {
    pub fn new(queue: &'a mut WorkQueue) -> Self {
        QueueTarget {
            queue,
            owner: None,
            predicates: Predicates::default(),
            check: None,
        }
    }

    fn filters(&self) -> bool {
        !self.predicates.is_empty() || self.check.is_some()
    }
}

/// An object a change carries, shared (not copied) with every `LazyObject` the
/// batch's iterations make: its bytes, or a compressed store entry, decompressed only
/// when a handler reads it (most handlers read the new version only, many neither).
#[derive(Debug, Clone)]
pub enum Object {
    Bytes(Arc<[u8]>),
    Entry(Arc<Entry>),
}

impl Object {
    /// The object of a cached entry the store gave up (replaced or deleted).
    pub fn of_entry(entry: Entry) -> Result<Self, StoreError> {
        if entry.compressed() {
            return Ok(Object::Entry(Arc::new(entry)));
        }
        Ok(Object::Bytes(Arc::from(entry.into_raw()?)))
    }

    /// The object of an entry the store keeps.
    pub fn of_cached(entry: &Entry) -> Result<Self, StoreError> {
        if entry.compressed() {
            return Ok(Object::Entry(Arc::new(entry.clone())));
        }
        Ok(Object::Bytes(Arc::from(&*entry.raw()?)))
    }

    /// The object's JSON bytes (decompressed now for a compressed entry).
    pub fn raw(&self) -> Result<std::borrow::Cow<'_, [u8]>, StoreError> {
        match self {
            Object::Bytes(b) => Ok(std::borrow::Cow::Borrowed(b)),
            Object::Entry(e) => e.raw(),
        }
    }
}

/// One change for Python event handlers: the object before and after.
#[derive(Debug, Clone)]
pub struct Changed {
    pub change: Change,
    pub key: Key,
    /// The cached version it replaced or deleted (the event's object for a delete of a
    /// key not cached); None for an add.
    pub old: Option<Object>,
    /// None for a delete.
    pub new: Option<Object>,
    /// From a list (initial, relist, snapshot) rather than a watch event.
    pub listed: bool,
}

/// Where changes go.
pub struct Fanout<'a> {
    pub queues: Vec<QueueTarget<'a>>,
    pub changes: Option<&'a mut Vec<Changed>>,
    /// The watched resource's name as a controller shows it (`ConfigMap`).
    pub source: &'a str,
    pub now: f64,
}

impl<'a> Fanout<'a> {
    /// No targets: apply only.
    pub fn none(now: f64) -> Self {
        Fanout {
            queues: Vec::new(),
            changes: None,
            source: "",
            now,
        }
    }

    /// Some target maps through an owner (the scan must capture ownerReferences).
    pub fn maps_owners(&self) -> bool {
        self.queues.iter().any(|t| t.owner.is_some())
    }

    /// A relist must hand back the versions it replaces (predicates, owners, handlers).
    pub fn needs_old(&self) -> bool {
        self.changes.is_some() || self.queues.iter().any(|t| t.owner.is_some() || t.filters())
    }

    /// The owner key of each target (None for targets without an owner mapping).
    pub fn owners(
        &self,
        mut of: impl FnMut(&OwnerMapping) -> Result<Option<String>, StoreError>,
    ) -> Result<Vec<Option<String>>, StoreError> {
        self.queues
            .iter()
            .map(|t| match t.owner {
                Some(m) => of(m),
                None => Ok(None),
            })
            .collect()
    }

    /// `key` was added or updated in `store` (`old`: the entry it replaced, if known;
    /// `new_owners`: each target's owner key of the new version, from `owners`).
    pub fn upserted(
        &mut self,
        store: &Store,
        key: &Key,
        change: Change,
        old: Option<Entry>,
        new_owners: &[Option<String>],
        listed: bool,
    ) -> Result<(), StoreError> {
        let Some(new) = store.get(key) else {
            return Ok(());
        };
        let (now, source) = (self.now, self.source);
        for (i, t) in self.queues.iter_mut().enumerate() {
            if let Some(old) = &old {
                if t.filters() && !update_passes(t.predicates, &mut t.check, key, old, new) {
                    continue;
                }
            }
            let origin = |via| Origin {
                change,
                listed,
                via,
            };
            match t.owner {
                None => t.queue.add_from(key, now, origin(None)),
                Some(m) => {
                    let new_owner = new_owners.get(i).cloned().flatten();
                    let old_owner = match &old {
                        Some(old) => m.of_entry(key, old)?,
                        None => None,
                    };
                    // The new owner, then the old one if it differs (the owner changed:
                    // both must look again), as EnqueueRequestForOwner's Update does.
                    let old_owner = old_owner.filter(|o| Some(o) != new_owner.as_ref());
                    for owner in [new_owner, old_owner].into_iter().flatten() {
                        let k = Key::from(owner.as_str());
                        t.queue.add_from(&k, now, origin(Some((source, key))));
                    }
                }
            }
        }
        if let Some(changes) = self.changes.as_deref_mut() {
            changes.push(Changed {
                change,
                key: key.clone(),
                old: old.map(Object::of_entry).transpose()?,
                new: Some(Object::of_cached(new)?),
                listed,
            });
        }
        Ok(())
    }

    /// `key` was deleted: `last` gives its last known state (the cached one, or the
    /// event's object; called only for the changes buffer), `owners` each target's
    /// owner key of it.
    pub fn deleted(
        &mut self,
        key: &Key,
        last: impl FnOnce() -> Result<Arc<[u8]>, StoreError>,
        owners: &[Option<String>],
        listed: bool,
    ) -> Result<(), StoreError> {
        let (now, source) = (self.now, self.source);
        for (i, t) in self.queues.iter_mut().enumerate() {
            let origin = |via| Origin {
                change: Change::Deleted,
                listed,
                via,
            };
            match t.owner {
                None => t.queue.add_from(key, now, origin(None)),
                Some(_) => {
                    if let Some(owner) = owners.get(i).cloned().flatten() {
                        let k = Key::from(owner.as_str());
                        t.queue.add_from(&k, now, origin(Some((source, key))));
                    }
                }
            }
        }
        if let Some(changes) = self.changes.as_deref_mut() {
            changes.push(Changed {
                change: Change::Deleted,
                key: key.clone(),
                old: Some(Object::Bytes(last()?)),
                new: None,
                listed,
            });
        }
        Ok(())
    }
}
