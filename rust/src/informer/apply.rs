//! The fast path: watch lines applied straight to a `Store` and fanned out to the
//! informer core's targets in the same call, with no Python per event
//! (`WatchDecoder.feed_into`, `InformerCore.feed`).
//!
//! ```text
//! payload slice ─lines─▶ decode_event ─▶ ADDED/MODIFIED: upsert (or the initial list)
//!                                        DELETED: delete;  each change ─▶ Fanout
//!                                        BOOKMARK: resourceVersion;  ERROR: stop
//! ```
//!
//! With an owner-mapped target the scan also captures `metadata.ownerReferences`; an
//! update enqueues the owners of the new and the replaced (old) object, as
//! controller-runtime's `EnqueueRequestForOwner` does for Update(old, new).
use super::Fanout;
use crate::json::Meta;
use crate::queue::Change;
use crate::store::{Key, ListAccumulator, Store, StoreError};
use crate::watch::decoder::{Decoder, FeedError, LineError, Stop};
use crate::watch::event::{decode_event, EventCounts, EventType};
use crate::watch::lines::Chunk;
use std::sync::Arc;

/// What one `feed_into` call did (summed over the `apply` calls it made).
#[derive(Debug, Default, PartialEq)]
pub struct FeedResult {
    /// ADDED/MODIFIED/DELETED events applied (to the store, or the initial list).
    pub applied: usize,
    pub bookmarks: usize,
    /// The last resourceVersion seen.
    pub resource_version: Option<String>,
    /// The first ERROR event (its Status bytes and fields); the rest was dropped.
    pub error: Option<(Vec<u8>, Meta)>,
    /// The `k8s.io/initial-events-end` bookmark was seen.
    pub initial_events_end: bool,
    /// The body's end was read (last chunk and trailers, or Content-Length bytes).
    pub body_done: bool,
}

/// Where events go.
pub struct Target<'a, 'f> {
    pub store: &'a mut Store,
    /// A streaming list's initial events go here instead of the store.
    pub initial: Option<&'a mut ListAccumulator>,
    /// Every applied change goes on to these.
    pub fan: &'a mut Fanout<'f>,
}

/// Applies every event `data` completes (through `decoder`'s framing and lines) to
/// `to` (see `apply`).
pub fn feed_into(
    decoder: &mut Decoder,
    data: &[u8],
    to: &mut Target<'_, '_>,
) -> Result<FeedResult, FeedError<LineError>> {
    let mut out = FeedResult::default();
    decoder.feed_lines(data, |chunk, counts| apply(chunk, to, &mut out, counts))?;
    out.body_done = decoder.body_done();
    Ok(out)
}

/// Applies every complete line `lines` reads, adding to `out` and `counts`:
/// - ADDED/MODIFIED upsert into `store`, DELETED deletes; each change goes to the
///   fan-out; `store.resource_version` follows every event and bookmark.
/// - With `initial` (a streaming list), ADDED/MODIFIED go into `initial` instead and the
///   store's resource version stays put; the initial-events-end bookmark returns
///   `Stop::Hold` at once, leaving the following lines buffered.
/// - An ERROR event stops (`Stop::Drop`) and is returned; the rest of the buffer is dropped.
/// - A malformed line stops with `LineError`; the rest of the buffer is dropped.
pub fn apply(
    lines: &mut Chunk<'_, '_>,
    to: &mut Target<'_, '_>,
    out: &mut FeedResult,
    counts: &mut EventCounts,
) -> Result<Stop, LineError> {
    let Target {
        store,
        initial,
        fan,
    } = to;
    let owners = fan.maps_owners();
    while let Some((line, bytes)) = lines.next_line() {
        let fail = |message: String| LineError {
            message: format!("line {}: {message}", line.number),
            position: line.position,
            line: line.number,
        };
        let schema = if owners {
            store.owner_schema()
        } else {
            store.schema()
        };
        let ev = match decode_event(bytes, schema) {
            Ok(ev) => {
                counts.count(ev.r#type);
                ev
            }
            Err(e) => {
                let err = fail(e.to_string());
                lines.drop_pending();
                return Err(err);
            }
        };
        if ev.r#type != EventType::Error {
            if let Some(rv) = &ev.meta.resource_version {
                out.resource_version = Some(rv.clone());
            }
        }
        let moves_rv = initial.is_none() && ev.meta.resource_version.is_some();
        match ev.r#type {
            EventType::Added | EventType::Modified => {
                if let Some(acc) = initial.as_deref_mut() {
                    acc.share_dict(store);
                    if let Err(e) = acc.push(&bytes[ev.object], ev.meta) {
                        let err = fail(e.to_string());
                        lines.drop_pending();
                        return Err(err);
                    }
                } else {
                    let rv = ev.meta.resource_version.clone();
                    let obj = &bytes[ev.object];
                    let done = upsert(store, fan, obj, ev.meta, owners);
                    if let Err(e) = done {
                        let err = fail(e.to_string());
                        lines.drop_pending();
                        return Err(err);
                    }
                    if moves_rv {
                        store.resource_version = rv;
                    }
                }
                out.applied += 1;
            }
            EventType::Deleted => {
                let obj = &bytes[ev.object.clone()];
                if let Err(e) = delete(store, fan, obj, &ev.meta, owners) {
                    let err = fail(e.to_string());
                    lines.drop_pending();
                    return Err(err);
                }
                if moves_rv {
                    store.resource_version = ev.meta.resource_version;
                }
                out.applied += 1;
            }
            EventType::Bookmark => {
                out.bookmarks += 1;
                let end = ev.meta.initial_events_end;
                if moves_rv {
                    store.resource_version = ev.meta.resource_version;
                }
                if end {
                    out.initial_events_end = true;
                    if initial.is_some() {
                        return Ok(Stop::Hold);
                    }
                }
            }
            EventType::Error => {
                out.error = Some((bytes[ev.object].to_vec(), ev.meta));
                lines.drop_pending();
                return Ok(Stop::Drop);
            }
        }
    }
    Ok(Stop::More)
}

/// ADDED/MODIFIED: store the object, then fan the change out (an update if the key was
/// cached, whatever the event's type: client-go's informer does the same).
fn upsert(
    store: &mut Store,
    fan: &mut Fanout<'_>,
    obj: &[u8],
    meta: Meta,
    owners: bool,
) -> Result<(), StoreError> {
    let new_owners = if owners {
        fan.owners(|m| Ok(m.of_meta(obj, &meta)?))?
    } else {
        Vec::new()
    };
    let (key, old) = store.upsert_meta(obj, meta)?;
    let change = if old.is_some() {
        Change::Updated
    } else {
        Change::Added
    };
    fan.upserted(store, &key, change, old, &new_owners, false)
}

/// DELETED: forget the object, then fan the delete out with its last state (the
/// event's object: the server's final version of it).
fn delete(
    store: &mut Store,
    fan: &mut Fanout<'_>,
    obj: &[u8],
    meta: &Meta,
    owners: bool,
) -> Result<(), StoreError> {
    let Some(key) = meta.key() else {
        return Ok(());
    };
    let owners = if owners {
        fan.owners(|m| Ok(m.of_meta(obj, meta)?))?
    } else {
        Vec::new()
    };
    let key = Key::from(key.as_str());
    store.delete(&key);
    fan.deleted(&key, || Ok(Arc::from(obj)), &owners, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::informer::QueueTarget;
    use crate::owner::OwnerMapping;
    use crate::queue::WorkQueue;
    use crate::ratelimit::default_controller;
    use crate::watch::lines::Lines;

    fn pod(name: &str, rv: &str) -> String {
        format!(
            r#"{{"kind":"Pod","metadata":{{"name":"{name}","namespace":"ns","resourceVersion":"{rv}","managedFields":[{{}}]}}}}"#
        )
    }

    fn event(kind: &str, obj: &str) -> String {
        format!("{{\"type\":\"{kind}\",\"object\":{obj}}}\n")
    }

    fn bookmark(rv: &str, end: bool) -> String {
        let ann = if end {
            r#","annotations":{"k8s.io/initial-events-end":"true"}"#
        } else {
            ""
        };
        event(
            "BOOKMARK",
            &format!(r#"{{"metadata":{{"resourceVersion":"{rv}"{ann}}}}}"#),
        )
    }

    const GONE: &str = r#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}
"#;

    fn drain(q: &mut WorkQueue) -> Vec<String> {
        let mut keys = Vec::new();
        while let Ok(Some(k)) = q.get(0.0) {
            keys.push(k.to_string());
        }
        keys
    }

    /// One `apply` call's result.
    fn feed(
        chunk: &mut Chunk<'_, '_>,
        store: &mut Store,
        queue: Option<&mut WorkQueue>,
        initial: Option<&mut ListAccumulator>,
    ) -> Result<FeedResult, LineError> {
        let mut out = FeedResult::default();
        let mut fan = Fanout::none(0.0);
        fan.queues.extend(queue.map(QueueTarget::new));
        let mut to = Target {
            store,
            initial,
            fan: &mut fan,
        };
        apply(chunk, &mut to, &mut out, &mut EventCounts::default()).map(|_| out)
    }

    fn setup() -> (Lines, Store, WorkQueue) {
        (
            Lines::default(),
            Store::new(true),
            WorkQueue::new(Box::new(default_controller())),
        )
    }

    #[test]
    fn events_are_applied_to_the_store_and_their_keys_queued() {
        let stream = [
            event("ADDED", &pod("a", "1")),
            event("ADDED", &pod("b", "2")),
            bookmark("3", false),
            event("MODIFIED", &pod("a", "4")),
            event("DELETED", &pod("b", "5")),
        ]
        .concat();
        let (mut lines, mut store, mut queue) = setup();
        let mut chunk = lines.feed(stream.as_bytes());
        let out = feed(&mut chunk, &mut store, Some(&mut queue), None).unwrap();
        assert_eq!((out.applied, out.bookmarks), (4, 1));
        assert_eq!(out.resource_version.as_deref(), Some("5"));
        assert_eq!(store.resource_version.as_deref(), Some("5"));
        assert_eq!(store.len(), 1);
        assert_eq!(store.get("ns/a").unwrap().resource_version(), Some("4"));
        let raw = store.get("ns/a").unwrap().raw().unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("managed"));
        assert_eq!(drain(&mut queue), ["ns/a", "ns/b"]);
    }

    #[test]
    fn an_error_event_stops_and_drops_the_rest() {
        let stream = [GONE, &event("ADDED", &pod("a", "1"))].concat();
        let (mut lines, mut store, _) = setup();
        let stream = [stream.as_str(), "{\"partial"].concat();
        let out = feed(&mut lines.feed(stream.as_bytes()), &mut store, None, None).unwrap();
        let (raw, meta) = out.error.unwrap();
        assert!(raw.starts_with(b"{\"kind\":\"Status\""));
        assert_eq!(meta.code, Some(410));
        assert_eq!(store.len(), 0);
        assert_eq!(lines.pending(), 0);
    }

    #[test]
    fn a_malformed_line_stops_after_applying_what_came_before() {
        let stream = [
            event("ADDED", &pod("a", "1")),
            "{nope}\n".to_string(),
            event("ADDED", &pod("b", "2")),
        ]
        .concat();
        let (mut lines, mut store, _) = setup();
        let err = feed(&mut lines.feed(stream.as_bytes()), &mut store, None, None).unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(err.position, event("ADDED", &pod("a", "1")).len() as u64);
        assert_eq!(store.len(), 1);
        assert_eq!(store.resource_version.as_deref(), Some("1"));
        assert_eq!(lines.pending(), 0);
    }

    #[test]
    fn a_streaming_list_fills_the_initial_list_and_stops_at_its_end() {
        let stream = [
            event("ADDED", &pod("a", "1")),
            event("ADDED", &pod("b", "2")),
            bookmark("9", true),
            event("MODIFIED", &pod("a", "10")),
        ]
        .concat();
        let (mut lines, mut store, mut queue) = setup();
        let mut initial = ListAccumulator::new(true);
        let out = feed(
            &mut lines.feed(stream.as_bytes()),
            &mut store,
            Some(&mut queue),
            Some(&mut initial),
        )
        .unwrap();
        assert!(out.initial_events_end);
        assert_eq!((out.applied, out.bookmarks), (2, 1));
        assert_eq!(out.resource_version.as_deref(), Some("9"));
        assert_eq!(initial.items.len(), 2);
        let first = initial.items[0].entry.raw().unwrap();
        let first = std::str::from_utf8(&first).unwrap();
        assert!(!first.contains("managedFields"), "{first}");
        assert_eq!(store.len(), 0);
        assert_eq!(store.resource_version, None);
        assert!(queue.is_empty());
        assert!(lines.pending() > 0);
        store.replace(initial.take(), out.resource_version).unwrap();
        let out = feed(&mut lines.feed(b""), &mut store, Some(&mut queue), None).unwrap();
        assert_eq!(out.applied, 1);
        assert_eq!(store.resource_version.as_deref(), Some("10"));
        assert_eq!(drain(&mut queue), ["ns/a"]);
    }

    fn owned(name: &str, rv: &str, owners: &str) -> String {
        format!(
            r#"{{"kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"ns","resourceVersion":"{rv}","ownerReferences":[{owners}]}},"data":{{}}}}"#
        )
    }

    fn widget_ref(name: &str, controller: bool) -> String {
        format!(
            r#"{{"apiVersion":"example.com/v1","kind":"Widget","name":"{name}","uid":"u","controller":{controller}}}"#
        )
    }

    fn feed_owned(stream: &str, store: &mut Store, queue: &mut WorkQueue) -> FeedResult {
        let mapping = OwnerMapping::new("example.com/v1", "Widget", true);
        let mut lines = Lines::default();
        let mut out = FeedResult::default();
        let mut fan = Fanout::none(0.0);
        fan.queues.push(QueueTarget {
            owner: Some(&mapping),
            ..QueueTarget::new(queue)
        });
        let mut to = Target {
            store,
            initial: None,
            fan: &mut fan,
        };
        let mut chunk = lines.feed(stream.as_bytes());
        apply(&mut chunk, &mut to, &mut out, &mut EventCounts::default()).unwrap();
        out
    }

    #[test]
    fn with_an_owner_mapping_the_owner_key_is_queued_and_the_object_stored() {
        let stream = [
            event("ADDED", &owned("a", "1", &widget_ref("w1", true))),
            event("ADDED", &owned("plain", "2", &widget_ref("w2", false))),
            event("ADDED", &owned("orphan", "3", "")),
        ]
        .concat();
        let (_, mut store, mut queue) = setup();
        let out = feed_owned(&stream, &mut store, &mut queue);
        assert_eq!(out.applied, 3);
        assert_eq!(store.len(), 3);
        assert!(store.contains("ns/a") && store.contains("ns/orphan"));
        assert_eq!(drain(&mut queue), ["ns/w1"]);
    }

    #[test]
    fn an_update_that_changes_the_owner_queues_the_new_and_the_old_owner() {
        let (_, mut store, mut queue) = setup();
        let stream = [
            event("ADDED", &owned("a", "1", &widget_ref("old", true))),
            event("MODIFIED", &owned("a", "2", &widget_ref("old", true))),
        ]
        .concat();
        feed_owned(&stream, &mut store, &mut queue);
        assert_eq!(drain(&mut queue), ["ns/old"]);
        queue.done("ns/old", 0.0);
        let moved = event("MODIFIED", &owned("a", "3", &widget_ref("new", true)));
        feed_owned(&moved, &mut store, &mut queue);
        assert_eq!(drain(&mut queue), ["ns/new", "ns/old"]);
    }

    #[test]
    fn a_delete_maps_through_the_deleted_objects_owner_references() {
        let (_, mut store, mut queue) = setup();
        feed_owned(
            &event("ADDED", &owned("a", "1", &widget_ref("w", true))),
            &mut store,
            &mut queue,
        );
        assert_eq!(drain(&mut queue), ["ns/w"]);
        queue.done("ns/w", 0.0);
        let gone = [
            event("DELETED", &owned("a", "2", &widget_ref("w", true))),
            event("DELETED", &owned("orphan", "3", "")),
        ]
        .concat();
        let out = feed_owned(&gone, &mut store, &mut queue);
        assert_eq!(out.applied, 2);
        assert_eq!(store.len(), 0);
        assert_eq!(drain(&mut queue), ["ns/w"]);
        assert_eq!(store.resource_version.as_deref(), Some("3"));
    }
}
