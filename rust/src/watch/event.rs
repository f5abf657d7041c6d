//! One watch line `{"type": ..., "object": {...}}` decoded: its type, the object's byte
//! range in the line and the object's `Meta`.
use crate::json::extract::meta_from_spans;
use crate::json::scanner::Scanner;
use crate::json::schema::{Schema, SLOT_OBJECT, SLOT_TYPE};
use crate::json::{extract::string_at, fail, Meta, SyntaxError};
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
            EventType::Bookmark => "BOOKMARK",
            EventType::Error => "ERROR",
        }
    }
}

impl EventType {
    /// Every type, in `EventCounts` order.
    pub const ALL: [EventType; 5] = [
        EventType::Added,
        EventType::Modified,
        EventType::Deleted,
        EventType::Bookmark,
        EventType::Error,
    ];
}

/// Events seen, per type (for metrics: no Python per event).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EventCounts([u64; 5]);

impl EventCounts {
    pub fn count(&mut self, kind: EventType) {
        self.0[kind as usize] += 1;
    }

    pub fn get(&self, kind: EventType) -> u64 {
        self.0[kind as usize]
    }
}

/// One watch event; `object` is the range of the object's bytes in the line.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    /// The event's `type` (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR).
    pub r#type: EventType,
    pub object: Range<usize>,
    pub meta: Meta,
}

/// Decodes one watch line `{"type": ..., "object": {...}}`.
pub fn decode_event(line: &[u8], schema: &Schema) -> Result<WatchEvent, SyntaxError> {
    let mut s = Scanner::new(line);
    s.ws();
    if s.peek() != Some(b'{') {
        return s.unexpected("an object");
    }
    let mut spans = vec![None; schema.slot_count()];
    s.object(Some((schema, schema.event_root)), &mut spans, 0)?;
    s.end()?;
    let kind = match string_at(line, &spans[SLOT_TYPE])?.as_deref() {
        Some("ADDED") => EventType::Added,
        Some("MODIFIED") => EventType::Modified,
        Some("DELETED") => EventType::Deleted,
        Some("BOOKMARK") => EventType::Bookmark,
        Some("ERROR") => EventType::Error,
        Some(other) => return fail(0, format!("unknown watch event type {other:?}")),
        None => return fail(0, "watch event without a \"type\""),
    };
    let Some(object) = spans[SLOT_OBJECT].clone() else {
        return fail(0, "watch event without an \"object\"");
    };
    if line[object.start] != b'{' {
        return fail(object.start, "watch event \"object\" is not an object");
    }
    let meta = meta_from_spans(&line[object.clone()], object.start, &spans, schema)?;
    if matches!(
        kind,
        EventType::Added | EventType::Modified | EventType::Deleted
    ) && meta.name.is_none()
    {
        return fail(object.start, "object without metadata.name");
    }
    Ok(WatchEvent {
        r#type: kind,
        object,
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::new(&[])
    }

    const POD: &str = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-1","namespace":"default","uid":"u-1","resourceVersion":"42","labels":{"app":"web","tier":"front"},"managedFields":[{"manager":"kubectl","fieldsV1":{"f:metadata":{}}}],"annotations":{"a":"b"}},"spec":{"nodeName":"node-a","containers":[{"name":"c","image":"nginx","ports":[{"containerPort":80}]}]},"status":{"phase":"Running","message":"ok","reason":"x"}}"#;

    #[test]
    fn an_added_event_yields_its_metadata_and_object_bytes() {
        let line = format!(r#"{{"type":"ADDED","object":{POD}}}"#);
        let ev = decode_event(line.as_bytes(), &schema()).unwrap();
        assert_eq!(ev.r#type, EventType::Added);
        assert_eq!(&line.as_bytes()[ev.object.clone()], POD.as_bytes());
        let m = &ev.meta;
        assert_eq!(m.key().as_deref(), Some("default/web-1"));
        assert_eq!(m.uid.as_deref(), Some("u-1"));
        assert_eq!(m.resource_version.as_deref(), Some("42"));
        assert_eq!(
            m.labels,
            vec![
                ("app".into(), "web".into()),
                ("tier".into(), "front".into())
            ]
        );
        assert!(!m.deleting);
        // Nested status.message/reason are not the Status fields of an ERROR event.
        assert_eq!(m.message, None);
    }

    #[test]
    fn the_object_may_come_before_the_type() {
        let line = format!(r#"{{"object":{POD},"type":"DELETED"}}"#);
        let ev = decode_event(line.as_bytes(), &schema()).unwrap();
        assert_eq!(ev.r#type, EventType::Deleted);
        assert_eq!(ev.meta.name.as_deref(), Some("web-1"));
    }

    #[test]
    fn escaped_keys_and_values_are_decoded() {
        let line = br#"{"type":"ADDED","object":{"metadata":{"n\u0061me":"a\"b\u00e9\ud83d\ude00","namespace":"ns"}}}"#;
        let ev = decode_event(line, &schema()).unwrap();
        assert_eq!(ev.meta.name.as_deref(), Some("a\"b\u{e9}\u{1F600}"));
    }

    #[test]
    fn a_bookmark_carries_its_resource_version_and_initial_events_end() {
        let line = br#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"99","annotations":{"k8s.io/initial-events-end":"true"}}}}"#;
        let ev = decode_event(line, &schema()).unwrap();
        assert_eq!(ev.r#type, EventType::Bookmark);
        assert_eq!(ev.meta.resource_version.as_deref(), Some("99"));
        assert!(ev.meta.initial_events_end);
    }

    #[test]
    fn an_error_event_carries_the_status_code_reason_and_message() {
        let line = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (2)","reason":"Expired","code":410}}"#;
        let ev = decode_event(line, &schema()).unwrap();
        assert_eq!(ev.r#type, EventType::Error);
        assert_eq!(ev.meta.code, Some(410));
        assert_eq!(ev.meta.reason.as_deref(), Some("Expired"));
        assert_eq!(
            ev.meta.message.as_deref(),
            Some("too old resource version: 1 (2)")
        );
    }

    #[test]
    fn a_deletion_timestamp_marks_the_object_as_deleting() {
        let line = br#"{"type":"MODIFIED","object":{"metadata":{"name":"a","deletionTimestamp":"2024-01-01T00:00:00Z"}}}"#;
        assert!(decode_event(line, &schema()).unwrap().meta.deleting);
        let line =
            br#"{"type":"MODIFIED","object":{"metadata":{"name":"a","deletionTimestamp":null}}}"#;
        assert!(!decode_event(line, &schema()).unwrap().meta.deleting);
    }

    #[test]
    fn malformed_lines_are_errors_with_a_position() {
        let bad: &[&[u8]] = &[
            b"{",
            b"{\"type\":\"ADDED\"",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}x",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":tru}}}",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"},\"x\":01}}",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\\q\"}}}",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\tb\"}}}",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"\xff\"}}}",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{}}}",
            b"{\"type\":\"NOPE\",\"object\":{\"metadata\":{\"name\":\"a\"}}}",
            b"{\"type\":\"ADDED\",\"object\":[]}",
            b"[]",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"\\ud800\"}}}",
        ];
        for line in bad {
            let r = decode_event(line, &schema());
            assert!(
                r.is_err(),
                "{:?} should fail",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn skipped_values_are_validated_too() {
        let ok: &[&[u8]] = &[
            b"{\"x\":\"a\\\"b\\u00e9\\n\",\"y\":[1,-2.5e3,true,false,null,{}],\"z\":\"\xc3\xa9\"}",
            br#"{ "x" : [ ] , "y" : { "a" : 1 } }"#,
        ];
        let bad: &[&[u8]] = &[
            br#"{"x":"\q"}"#,
            br#"{"x":"\u12"}"#,
            b"{\"x\":\"a\x01b\"}",
            b"{\"x\":\"\xc3\x28\"}",
            b"{\"x\":\"\xff\"}",
            br#"{"x":[1,]}"#,
            br#"{"x":{"a":1,}}"#,
            br#"{"x":{"a" 1}}"#,
            br#"{"x":-}"#,
            br#"{"x":1.}"#,
            br#"{"x":1e}"#,
            br#"{"x":nul}"#,
            br#"{"x":"unterminated}"#,
            br#"{"x":[1 2]}"#,
        ];
        for (objects, valid) in [(ok, true), (bad, false)] {
            for obj in objects {
                let line = [
                    br#"{"type":"ADDED","object":{"metadata":{"name":"a"},"spec":"#,
                    *obj,
                    b"}}",
                ]
                .concat();
                assert_eq!(
                    decode_event(&line, &schema()).is_ok(),
                    valid,
                    "{}",
                    String::from_utf8_lossy(obj)
                );
            }
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut line =
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"},\"x\":".to_vec();
        line.extend(std::iter::repeat_n(b'[', 100_000));
        let err = decode_event(&line, &schema()).unwrap_err();
        assert!(err.message.contains("deep"));
    }
}
