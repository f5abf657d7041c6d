//! A relist through the fan-out: the store's content replaced in one step, then each
//! added key (an add), each key found again (an update against the version it replaced:
//! predicates compare the two) and each vanished key (a delete with its last state, a
//! tombstone) handed to every target, as listed.
use super::fanout::Fanout;
use crate::queue::Change;
use crate::store::{ListItem, ReplaceResult, Store, StoreError};
use std::sync::Arc;

/// Replaces `store`'s content with `items` at `resource_version` and fans the change
/// out. The result's `old` is empty (the replaced entries went to the targets).
pub fn relist(
    store: &mut Store,
    items: Vec<ListItem>,
    resource_version: Option<String>,
    fan: &mut Fanout<'_>,
) -> Result<ReplaceResult, StoreError> {
    let keep_old = fan.needs_old();
    let mut out = store.replace_keeping(items, resource_version, keep_old)?;
    let maps = fan.maps_owners();
    for key in &out.added {
        let owners = match store.get(key) {
            Some(entry) if maps => fan.owners(|m| m.of_entry(key, entry))?,
            _ => Vec::new(),
        };
        fan.upserted(store, key, Change::Added, None, &owners, true)?;
    }
    let mut old = std::mem::take(&mut out.old).into_iter();
    for key in &out.updated {
        let owners = match store.get(key) {
            Some(entry) if maps => fan.owners(|m| m.of_entry(key, entry))?,
            _ => Vec::new(),
        };
        fan.upserted(store, key, Change::Updated, old.next(), &owners, true)?;
    }
    for (key, last) in &out.deleted {
        let owners = if maps {
            fan.owners(|m| Ok(m.owner_key(last)?))?
        } else {
            Vec::new()
        };
        fan.deleted(key, || Ok(Arc::from(&last[..])), &owners, true)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::informer::{Changed, QueueTarget};
    use crate::json::decode_object;
    use crate::owner::OwnerMapping;
    use crate::queue::WorkQueue;
    use crate::ratelimit::default_controller;
    use crate::store::ListAccumulator;

    fn owned(name: &str, owner: &str, rv: &str) -> String {
        format!(
            r#"{{"metadata":{{"name":"{name}","namespace":"ns","resourceVersion":"{rv}","ownerReferences":[{{"apiVersion":"example.com/v1","kind":"Widget","name":"{owner}","controller":true}}]}}}}"#
        )
    }

    fn items(store: &Store, raws: &[String]) -> Vec<ListItem> {
        let mut acc = ListAccumulator::new(true);
        for raw in raws {
            let meta = decode_object(raw.as_bytes(), store.schema()).unwrap();
            acc.push(raw.as_bytes(), meta).unwrap();
        }
        acc.take()
    }

    fn drain(q: &mut WorkQueue) -> Vec<String> {
        let mut keys = Vec::new();
        while let Ok(Some(k)) = q.get(0.0) {
            keys.push(k.to_string());
        }
        keys
    }

    #[test]
    fn a_relist_reaches_a_queue_an_owner_mapped_queue_and_the_changes_buffer() {
        let mapping = OwnerMapping::new("example.com/v1", "Widget", true);
        let mut store = Store::new(true);
        for (name, owner) in [("kept", "w-old"), ("gone", "w-gone"), ("same", "w-same")] {
            store.upsert(owned(name, owner, "1").as_bytes()).unwrap();
        }
        store
            .upsert(br#"{"metadata":{"name":"orphan","namespace":"ns"}}"#)
            .unwrap();
        let list = [
            owned("new", "w-new", "2"),
            owned("kept", "w-moved", "2"),
            owned("same", "w-same", "1"),
        ];
        let list = items(&store, &list);
        let (mut own, mut owners) = (
            WorkQueue::new(Box::new(default_controller())),
            WorkQueue::new(Box::new(default_controller())),
        );
        let mut changes: Vec<Changed> = Vec::new();
        let mut fan = Fanout::none(0.0);
        fan.queues.push(QueueTarget::new(&mut own));
        fan.queues.push(QueueTarget {
            owner: Some(&mapping),
            ..QueueTarget::new(&mut owners)
        });
        fan.changes = Some(&mut changes);
        let out = relist(&mut store, list, Some("9".into()), &mut fan).unwrap();
        assert_eq!(
            (out.added.len(), out.updated.len(), out.deleted.len()),
            (1, 2, 2)
        );
        assert!(out.old.is_empty());
        // Adds, then updates, then deletes (those in no particular order).
        let mut own = drain(&mut own);
        own[3..].sort();
        assert_eq!(
            own,
            ["ns/new", "ns/kept", "ns/same", "ns/gone", "ns/orphan"]
        );
        assert_eq!(
            drain(&mut owners),
            [
                "ns/w-new",
                "ns/w-moved",
                "ns/w-old",
                "ns/w-same",
                "ns/w-gone"
            ]
        );
        let mut seen: Vec<(Change, &str, bool, bool)> = changes
            .iter()
            .map(|c| (c.change, &*c.key, c.old.is_some(), c.new.is_some()))
            .collect();
        seen[3..].sort_by_key(|c| c.1);
        assert_eq!(
            seen,
            [
                (Change::Added, "ns/new", false, true),
                (Change::Updated, "ns/kept", true, true),
                (Change::Updated, "ns/same", true, true),
                (Change::Deleted, "ns/gone", true, false),
                (Change::Deleted, "ns/orphan", true, false),
            ]
        );
        assert!(changes.iter().all(|c| c.listed));
        let old = changes[1].old.as_ref().unwrap().raw().unwrap();
        let old = String::from_utf8(old.to_vec()).unwrap();
        assert!(old.contains("w-old"), "{old}");
        assert_eq!(store.resource_version.as_deref(), Some("9"));
    }

    #[test]
    fn a_relist_filters_updates_by_the_targets_predicates() {
        use crate::informer::Predicates;
        let mut store = Store::new(true);
        for name in ["a", "b"] {
            store.upsert(owned(name, "w", "1").as_bytes()).unwrap();
        }
        let list = items(&store, &[owned("a", "w", "1"), owned("b", "w", "2")]);
        let mut q = WorkQueue::new(Box::new(default_controller()));
        let mut fan = Fanout::none(0.0);
        fan.queues.push(QueueTarget {
            predicates: Predicates::from_bits(Predicates::RESOURCE_VERSION).unwrap(),
            ..QueueTarget::new(&mut q)
        });
        relist(&mut store, list, None, &mut fan).unwrap();
        assert_eq!(drain(&mut q), ["ns/b"]);
    }
}
