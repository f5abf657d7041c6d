//! The watch decoder's state across socket reads: body framing, lines, the bytes an
//! early stop left over, and the event counters. One `feed` or `feed_lines` per read.
//!
//! ```text
//! read ─▶ [held bytes] + read ─Deframer─▶ payload slices ─Lines─▶ lines ─▶ read(lines)
//!           ▲                                                              │
//!           └──── Stop::Hold (initial-events-end): the rest is kept ───────┘
//!                 Stop::Drop (ERROR) or a bad line: the rest is de-framed and dropped
//! ```
//! Dropped payload still goes through the de-framer, so the body's end is found and
//! the next read is framed right.
use super::chunked::{Deframer, Framing, FramingError};
use super::event::{decode_event, EventCounts, WatchEvent};
use super::lines::{Chunk, Lines};
use crate::json::Schema;

/// What a reader of lines wants after a payload slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Go on with the next slice.
    More,
    /// Stop now and keep every unread byte for the next call.
    Hold,
    /// Stop now and drop the rest of the input (it is still de-framed).
    Drop,
}

/// A malformed line; the events before it were read, the buffer was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub message: String,
    /// Stream offset of the start of the bad line.
    pub position: u64,
    /// 1-based line number.
    pub line: u64,
}

/// Why a feed stopped with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError<E> {
    /// Malformed framing; the decoder keeps returning it until `reset`.
    Framing(FramingError),
    /// The line reader's error; the rest of the input was dropped.
    Read(E),
}

#[derive(Debug, Default)]
pub struct Decoder {
    frames: Deframer,
    lines: Lines,
    /// Body bytes not de-framed yet, left by a `Stop::Hold`.
    held: Vec<u8>,
    counts: EventCounts,
}

impl Decoder {
    /// A new stream (position 0, line 1) framed as `framing`; the counts stay.
    pub fn reset(&mut self, framing: Framing) {
        self.frames = Deframer::new(framing);
        self.lines.reset();
        self.held = Vec::new();
    }

    /// The body's end was read.
    pub fn body_done(&self) -> bool {
        self.frames.done()
    }

    /// Bytes buffered and not decoded yet.
    pub fn pending(&self) -> usize {
        self.lines.pending() + self.held.len() + self.frames.buffered()
    }

    /// Events seen since creation (`reset` keeps them).
    pub fn counts(&self) -> EventCounts {
        self.counts
    }

    /// Decodes every line `data` completes, handing each event to `on_event`. A bad
    /// line does not stop it: the first is returned (`Ok(Some)`) after the rest.
    pub fn feed<E>(
        &mut self,
        data: &[u8],
        schema: &Schema,
        mut on_event: impl FnMut(&[u8], WatchEvent) -> Result<(), E>,
    ) -> Result<Option<LineError>, FeedError<E>> {
        let mut first_bad: Option<LineError> = None;
        let counts = &mut self.counts;
        let read = |chunk: &mut Chunk<'_, '_>| -> Result<Stop, E> {
            while let Some((line, bytes)) = chunk.next_line() {
                match decode_event(bytes, schema) {
                    Ok(ev) => {
                        counts.count(ev.r#type);
                        on_event(bytes, ev)?;
                    }
                    Err(e) if first_bad.is_none() => {
                        first_bad = Some(LineError {
                            message: format!("line {}: {e}", line.number),
                            position: line.position,
                            line: line.number,
                        });
                    }
                    Err(_) => {}
                }
            }
            Ok(Stop::More)
        };
        drive(
            &mut self.frames,
            &mut self.lines,
            &mut self.held,
            data,
            read,
        )?;
        Ok(first_bad)
    }

    /// Hands every payload slice `data` completes, as lines, to `read` (with the event
    /// counters), honouring what it says (`Stop`); the informer core's `feed_into`
    /// applies events this way.
    pub fn feed_lines<E>(
        &mut self,
        data: &[u8],
        mut read: impl FnMut(&mut Chunk<'_, '_>, &mut EventCounts) -> Result<Stop, E>,
    ) -> Result<(), FeedError<E>> {
        let counts = &mut self.counts;
        drive(
            &mut self.frames,
            &mut self.lines,
            &mut self.held,
            data,
            |chunk| read(chunk, counts),
        )
    }

    /// The number of the line being read (for errors outside a line).
    pub fn line_number(&self) -> u64 {
        self.lines.lines_read() + 1
    }
}

/// Runs `read` over the lines left buffered, then over the payload of `held` and
/// `data`, then (at the body's end) over a partial last line.
fn drive<E>(
    frames: &mut Deframer,
    lines: &mut Lines,
    held: &mut Vec<u8>,
    data: &[u8],
    mut read: impl FnMut(&mut Chunk<'_, '_>) -> Result<Stop, E>,
) -> Result<(), FeedError<E>> {
    let kept = std::mem::take(held);
    let inputs: [&[u8]; 2] = [&kept, data];
    if lines.pending() > 0 {
        let result = read(&mut lines.feed(&[]));
        if after(frames, lines, held, &inputs, result, 0, 0)? {
            return Ok(());
        }
    }
    for (i, input) in inputs.iter().enumerate() {
        let mut at = 0;
        loop {
            let slice = match frames.next(input, &mut at) {
                Ok(Some(slice)) => slice,
                Ok(None) => break,
                Err(e) => {
                    lines.feed(&[]).drop_pending();
                    return Err(FeedError::Framing(e));
                }
            };
            let result = read(&mut lines.feed(slice));
            if after(frames, lines, held, &inputs, result, i, at)? {
                return Ok(());
            }
        }
    }
    if frames.done() && lines.pending() > 0 {
        // The body ended: its last line is complete without a newline.
        let result = read(&mut lines.feed(b"\n"));
        after(frames, lines, held, &inputs, result, 2, 0)?;
    }
    Ok(())
}

/// Acts on what `read` said about a slice that ended at `inputs[i][at]`; true when
/// the feed stops here.
fn after<E>(
    frames: &mut Deframer,
    lines: &mut Lines,
    held: &mut Vec<u8>,
    inputs: &[&[u8]],
    result: Result<Stop, E>,
    i: usize,
    at: usize,
) -> Result<bool, FeedError<E>> {
    let rest = inputs.get(i..).unwrap_or_default().iter().enumerate();
    match result {
        Ok(Stop::More) => Ok(false),
        Ok(Stop::Hold) if frames.done() => Ok(true),
        Ok(Stop::Hold) => {
            for (k, input) in rest {
                held.extend_from_slice(if k == 0 { &input[at..] } else { input });
            }
            Ok(true)
        }
        Ok(Stop::Drop) | Err(_) => {
            for (k, input) in rest {
                let mut at = if k == 0 { at } else { 0 };
                // A framing error here surfaces on the next call.
                while let Ok(Some(slice)) = frames.next(input, &mut at) {
                    lines.feed(slice).drop_pending();
                }
            }
            result.map(|_| true).map_err(FeedError::Read)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::informer::apply::{feed_into, FeedResult, Target};
    use crate::informer::{Fanout, QueueTarget};

    /// `feed_into` as a method, as the tests below were written.
    trait FeedInto {
        fn feed_into(
            &mut self,
            data: &[u8],
            to: &mut Target<'_, '_>,
        ) -> Result<FeedResult, FeedError<LineError>>;
    }

    impl FeedInto for Decoder {
        fn feed_into(
            &mut self,
            data: &[u8],
            to: &mut Target<'_, '_>,
        ) -> Result<FeedResult, FeedError<LineError>> {
            feed_into(self, data, to)
        }
    }
    use crate::owner::OwnerMapping;
    use crate::queue::WorkQueue;
    use crate::ratelimit::default_controller;
    use crate::store::{ListAccumulator, Store};
    use crate::watch::event::EventType;

    /// A fan-out to at most one queue, maybe through an owner mapping.
    fn fan_of<'a>(queue: Option<&'a mut WorkQueue>, owner: Option<&'a OwnerMapping>) -> Fanout<'a> {
        let mut fan = Fanout::none(0.0);
        fan.queues.extend(queue.map(|q| QueueTarget {
            owner,
            ..QueueTarget::new(q)
        }));
        fan
    }

    fn event(kind: &str, name: &str, rv: &str) -> String {
        format!(
            "{{\"type\":\"{kind}\",\"object\":{{\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"ns\",\"resourceVersion\":\"{rv}\"}}}}}}\n"
        )
    }

    fn bookmark(rv: &str, end: bool) -> String {
        let ann = if end {
            r#","annotations":{"k8s.io/initial-events-end":"true"}"#
        } else {
            ""
        };
        format!("{{\"type\":\"BOOKMARK\",\"object\":{{\"metadata\":{{\"resourceVersion\":\"{rv}\"{ann}}}}}}}\n")
    }

    /// One chunk per event, as the apiserver frames a watch.
    fn frame(events: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, e) in events.iter().enumerate() {
            out.extend_from_slice(format!("{:x}", e.len()).as_bytes());
            if i % 2 == 1 {
                out.extend_from_slice(b";ext=\"x\"");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(e.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
        out
    }

    /// What a `feed_into` sequence leaves: per call results, store state, queued keys.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        applied: usize,
        bookmarks: usize,
        ends: usize,
        rv: Option<String>,
        keys: Vec<String>,
        initial: usize,
        body_done: bool,
        error: Option<String>,
        counts: Vec<u64>,
    }

    /// Feeds `parts` into a decoder, continuing after an initial-events-end stop, and
    /// replacing the store with the initial list there.
    fn feed_all(framing: Framing, parts: &[&[u8]], streaming: bool) -> Outcome {
        let mut d = Decoder::default();
        d.reset(framing);
        let mut store = Store::new(true);
        let mut queue = WorkQueue::new(Box::new(default_controller()));
        let mut acc = ListAccumulator::new(true);
        let mut o = Outcome {
            applied: 0,
            bookmarks: 0,
            ends: 0,
            rv: None,
            keys: Vec::new(),
            initial: 0,
            body_done: false,
            error: None,
            counts: Vec::new(),
        };
        let mut listing = streaming;
        let mut i = 0;
        let mut again = false;
        while i < parts.len() {
            let data = if again { &b""[..] } else { parts[i] };
            let mut fan = fan_of(Some(&mut queue), None);
            let mut to = Target {
                store: &mut store,
                initial: if listing { Some(&mut acc) } else { None },
                fan: &mut fan,
            };
            match d.feed_into(data, &mut to) {
                Ok(r) => {
                    o.applied += r.applied;
                    o.bookmarks += r.bookmarks;
                    o.body_done = r.body_done;
                    if r.initial_events_end && listing {
                        o.ends += 1;
                        o.initial = acc.items.len();
                        store.replace(acc.take(), r.resource_version).unwrap();
                        listing = false;
                        again = true;
                        continue;
                    }
                }
                Err(e) => {
                    o.error = Some(format!("{e:?}"));
                    break;
                }
            }
            again = false;
            i += 1;
        }
        o.rv = store.resource_version.clone();
        while let Ok(Some(k)) = queue.get(0.0) {
            o.keys.push(k.to_string());
        }
        o.keys.sort();
        o.counts = EventType::ALL.iter().map(|&k| d.counts().get(k)).collect();
        o
    }

    fn stream() -> Vec<u8> {
        frame(&[
            event("ADDED", "a", "1"),
            event("ADDED", "b", "2"),
            bookmark("3", true),
            event("MODIFIED", "a", "4"),
            event("DELETED", "b", "5"),
            bookmark("6", false),
        ])
    }

    #[test]
    fn a_chunked_streaming_list_applies_like_its_unframed_lines() {
        let whole = feed_all(Framing::Chunked, &[&stream()], true);
        assert_eq!(whole.error, None);
        assert_eq!((whole.applied, whole.bookmarks, whole.ends), (4, 2, 1));
        assert_eq!(whole.initial, 2);
        assert_eq!(whole.rv.as_deref(), Some("6"));
        assert_eq!(whole.keys, ["ns/a", "ns/b"]);
        assert!(whole.body_done);
        assert_eq!(whole.counts, [2, 1, 1, 2, 0]);
        let lines: String = [
            event("ADDED", "a", "1"),
            event("ADDED", "b", "2"),
            bookmark("3", true),
            event("MODIFIED", "a", "4"),
            event("DELETED", "b", "5"),
            bookmark("6", false),
        ]
        .concat();
        let plain = feed_all(Framing::UntilEof, &[lines.as_bytes()], true);
        assert_eq!(
            plain,
            Outcome {
                body_done: false,
                ..whole
            }
        );
    }

    #[test]
    fn every_two_way_and_three_way_split_of_a_chunked_stream_gives_the_same_outcome() {
        let s = stream();
        let whole = feed_all(Framing::Chunked, &[&s], true);
        for a in 0..=s.len() {
            assert_eq!(
                feed_all(Framing::Chunked, &[&s[..a], &s[a..]], true),
                whole,
                "split at {a}"
            );
        }
        for a in (0..=s.len()).step_by(7) {
            for b in (a..=s.len()).step_by(5) {
                let got = feed_all(Framing::Chunked, &[&s[..a], &s[a..b], &s[b..]], true);
                assert_eq!(got, whole, "split at {a}, {b}");
            }
        }
    }

    #[test]
    fn the_end_bookmark_keeps_the_following_chunks_of_the_same_read() {
        let s = stream();
        let mut d = Decoder::default();
        d.reset(Framing::Chunked);
        let mut store = Store::new(true);
        let mut acc = ListAccumulator::new(true);
        let mut fan = fan_of(None, None);
        let mut to = Target {
            store: &mut store,
            initial: Some(&mut acc),
            fan: &mut fan,
        };
        let r = d.feed_into(&s, &mut to).unwrap();
        assert!(r.initial_events_end && !r.body_done);
        assert!(d.pending() > 0);
        let mut fan = fan_of(None, None);
        let mut to = Target {
            store: &mut store,
            initial: None,
            fan: &mut fan,
        };
        let r = d.feed_into(b"", &mut to).unwrap();
        assert_eq!((r.applied, r.bookmarks, r.body_done), (2, 1, true));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn a_stop_at_the_end_of_a_content_length_body_keeps_nothing_after_it() {
        let body = [event("ADDED", "a", "1"), bookmark("2", true)].concat();
        let mut d = Decoder::default();
        d.reset(Framing::ContentLength(body.len() as u64));
        let mut store = Store::new(true);
        let mut acc = ListAccumulator::new(true);
        let mut fan = fan_of(None, None);
        let mut to = Target {
            store: &mut store,
            initial: Some(&mut acc),
            fan: &mut fan,
        };
        let data = [body.as_bytes(), b"after the body"].concat();
        let r = d.feed_into(&data, &mut to).unwrap();
        assert!(r.initial_events_end && r.body_done);
        assert_eq!((acc.items.len(), d.pending()), (1, 0));
    }

    #[test]
    fn an_error_event_drops_the_rest_but_still_finds_the_body_end() {
        let gone =
            "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410}}\n".to_string();
        let s = frame(&[event("ADDED", "a", "1"), gone, event("ADDED", "b", "2")]);
        let mut d = Decoder::default();
        d.reset(Framing::Chunked);
        let mut store = Store::new(true);
        let mut fan = fan_of(None, None);
        let mut to = Target {
            store: &mut store,
            initial: None,
            fan: &mut fan,
        };
        let r = d.feed_into(&s, &mut to).unwrap();
        assert_eq!(r.applied, 1);
        assert_eq!(r.error.unwrap().1.code, Some(410));
        assert!(r.body_done);
        assert_eq!((d.pending(), store.len()), (0, 1));
    }

    #[test]
    fn a_framing_error_applies_what_came_before_and_stays_until_reset() {
        let mut s = frame(&[event("ADDED", "a", "1")]);
        s.truncate(s.len() - b"0\r\nX-Trailer: t\r\n\r\n".len());
        s.extend_from_slice(b"zz\r\n");
        let mut d = Decoder::default();
        d.reset(Framing::Chunked);
        let mut store = Store::new(true);
        let mut fan = fan_of(None, None);
        let mut to = Target {
            store: &mut store,
            initial: None,
            fan: &mut fan,
        };
        let Err(FeedError::Framing(e)) = d.feed_into(&s, &mut to) else {
            panic!("expected a framing error")
        };
        assert_eq!(e.position, s.len() as u64 - 4);
        assert!(matches!(
            d.feed_into(b"", &mut to),
            Err(FeedError::Framing(_))
        ));
        d.reset(Framing::Chunked);
        let r = d
            .feed_into(&frame(&[event("ADDED", "b", "2")]), &mut to)
            .unwrap();
        assert_eq!((r.applied, r.body_done), (1, true));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn feed_decodes_chunked_events_and_reports_the_first_bad_line_after_the_rest() {
        let s = frame(&[
            event("ADDED", "a", "1"),
            "{nope}\n".to_string(),
            event("DELETED", "a", "2"),
        ]);
        let mut d = Decoder::default();
        d.reset(Framing::Chunked);
        let mut seen = Vec::new();
        let bad = d
            .feed(&s, &Schema::new(&[]), |_, ev| {
                seen.push(ev.r#type);
                Ok::<_, ()>(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(seen, [EventType::Added, EventType::Deleted]);
        assert_eq!(bad.line, 2);
        assert!(d.body_done());
        assert_eq!(d.counts().get(EventType::Added), 1);
    }

    #[test]
    fn a_content_length_body_ends_its_last_line_at_the_end() {
        let body = event("ADDED", "a", "1");
        let body = body.trim_end();
        let framing = Framing::ContentLength(body.len() as u64);
        let o = feed_all(framing, &[body.as_bytes(), b"junk after the body"], false);
        assert_eq!((o.applied, o.body_done, o.error), (1, true, None));
    }

    #[test]
    fn every_split_of_a_stream_maps_to_the_same_owner_keys() {
        use crate::owner::OwnerMapping;
        let owned = |kind: &str, name: &str, owner: &str, rv: &str| {
            format!(
                "{{\"type\":\"{kind}\",\"object\":{{\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"ns\",\"resourceVersion\":\"{rv}\",\"ownerReferences\":[{{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"name\":\"{owner}\",\"controller\":true}}]}}}}}}\n"
            )
        };
        let s = frame(&[
            owned("ADDED", "a", "w1", "1"),
            owned("ADDED", "b", "w2", "2"),
            owned("MODIFIED", "a", "w3", "3"),
            owned("DELETED", "b", "w2", "4"),
        ]);
        let mapping = OwnerMapping::new("example.com/v1", "Widget", true);
        let run = |parts: &[&[u8]]| {
            let mut d = Decoder::default();
            d.reset(Framing::Chunked);
            let mut store = Store::new(true);
            let mut queue = WorkQueue::new(Box::new(default_controller()));
            for part in parts {
                let mut fan = fan_of(Some(&mut queue), Some(&mapping));
                let mut to = Target {
                    store: &mut store,
                    initial: None,
                    fan: &mut fan,
                };
                d.feed_into(part, &mut to).unwrap();
            }
            let mut keys = Vec::new();
            while let Ok(Some(k)) = queue.get(0.0) {
                keys.push(k.to_string());
            }
            (
                keys,
                store.list_keys().map(|k| k.to_string()).collect::<Vec<_>>(),
            )
        };
        let whole = run(&[&s]);
        assert_eq!(whole.0, ["ns/w1", "ns/w2", "ns/w3"]);
        assert_eq!(whole.1, ["ns/a"]);
        for a in 0..=s.len() {
            assert_eq!(run(&[&s[..a], &s[a..]]), whole, "split at {a}");
        }
    }
}
