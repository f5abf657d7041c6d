//! The fast path: watch lines applied straight to a `Store` and a `WorkQueue`, with no
//! Python per event (`WatchDecoder.feed_into`).
//!
//! ```text
//! payload slice ─lines─▶ decode_event ─▶ ADDED/MODIFIED: upsert (or the initial list)
//!                                        DELETED: delete;  each key ─▶ WorkQueue
//!                                        BOOKMARK: resourceVersion;  ERROR: stop
//! ```
use super::decoder::Stop;
use super::event::{decode_event, EventCounts, EventType};
use super::lines::Chunk;
use crate::json::Meta;
use crate::queue::WorkQueue;
use crate::store::{ListAccumulator, Store};

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
pub struct Target<'a> {
    pub store: &'a mut Store,
    pub queue: Option<&'a mut WorkQueue>,
    pub now: f64,
    /// A streaming list's initial events go here instead of the store.
    pub initial: Option<&'a mut ListAccumulator>,
}

/// A malformed line; the events before it were applied, the buffer was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub message: String,
    /// Stream offset of the start of the bad line.
    pub position: u64,
    /// 1-based line number.
    pub line: u64,
}

/// Applies every complete line `lines` reads, adding to `out` and `counts`:
/// - ADDED/MODIFIED upsert into `store`, DELETED deletes; each key is added to `queue`;
///   `store.resource_version` follows every event and bookmark.
/// - With `initial` (a streaming list), ADDED/MODIFIED go into `initial` instead and the
///   store's resource version stays put; the initial-events-end bookmark returns
///   `Stop::Hold` at once, leaving the following lines buffered.
/// - An ERROR event stops (`Stop::Drop`) and is returned; the rest of the buffer is dropped.
/// - A malformed line stops with `LineError`; the rest of the buffer is dropped.
pub fn apply(
    lines: &mut Chunk<'_, '_>,
    to: &mut Target<'_>,
    out: &mut FeedResult,
    counts: &mut EventCounts,
) -> Result<Stop, LineError> {
    let Target {
        store,
        queue,
        now,
        initial,
    } = to;
    let now = *now;
    while let Some((line, bytes)) = lines.next_line() {
        let fail = |message: String| LineError {
            message: format!("line {}: {message}", line.number),
            position: line.position,
            line: line.number,
        };
        let ev = match decode_event(bytes, store.schema()) {
            Ok(ev) => {
                counts.count(ev.kind);
                ev
            }
            Err(e) => {
                let err = fail(e.to_string());
                lines.drop_pending();
                return Err(err);
            }
        };
        if ev.kind != EventType::Error {
            if let Some(rv) = &ev.meta.resource_version {
                out.resource_version = Some(rv.clone());
            }
        }
        let moves_rv = initial.is_none() && ev.meta.resource_version.is_some();
        match ev.kind {
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
                    let key = match store.upsert(&bytes[ev.object], ev.meta) {
                        Ok((key, _)) => key,
                        Err(e) => {
                            let err = fail(e.to_string());
                            lines.drop_pending();
                            return Err(err);
                        }
                    };
                    if let Some(q) = queue.as_deref_mut() {
                        q.add_shared(&key, now);
                    }
                    if moves_rv {
                        store.resource_version = rv;
                    }
                }
                out.applied += 1;
            }
            EventType::Deleted => {
                if let Some(key) = ev.meta.key() {
                    store.delete(&key);
                    if let Some(q) = queue.as_deref_mut() {
                        q.add(&key, now);
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
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
        let mut to = Target {
            store,
            queue,
            now: 0.0,
            initial,
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
}
