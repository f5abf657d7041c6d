//! From captured spans to values: strings, label maps, index values, and the `Meta` of
//! one object (`decode_object`).
use super::scanner::Scanner;
use super::schema::*;
use super::{SyntaxError, R};
use std::ops::Range;

/// A string value at `span` (None if the span is absent or not a string).
pub(crate) fn string_at(b: &[u8], span: &Option<Range<usize>>) -> R<Option<String>> {
    let Some(span) = span else { return Ok(None) };
    if b.get(span.start) != Some(&b'"') {
        return Ok(None);
    }
    let mut s = Scanner {
        b: &b[..span.end],
        pos: span.start,
    };
    s.string().map(|c| Some(c.into_owned()))
}

/// Index values of the value at `span`: a string, each string of an array, or the text
/// of a number or boolean. Null, objects and absent fields give none.
pub(crate) fn index_values_at(b: &[u8], span: &Option<Range<usize>>) -> R<Vec<String>> {
    let Some(span) = span else {
        return Ok(Vec::new());
    };
    let v = &b[span.clone()];
    match v.first() {
        Some(b'"') => Ok(string_at(b, &Some(span.clone()))?.into_iter().collect()),
        Some(b'[') => {
            let mut out = Vec::new();
            let mut s = Scanner {
                b: &b[..span.end],
                pos: span.start + 1,
            };
            loop {
                s.ws();
                match s.peek() {
                    Some(b']') | None => break,
                    Some(b',') => s.pos += 1,
                    Some(b'"') => out.push(s.string()?.into_owned()),
                    Some(_) => {
                        let start = s.pos;
                        s.skip_value(1)?;
                        let text = &b[start..s.pos];
                        if !matches!(text.first(), Some(b'{' | b'[' | b'n')) {
                            out.push(String::from_utf8_lossy(text).into_owned());
                        }
                    }
                }
            }
            Ok(out)
        }
        Some(b'{' | b'n') | None => Ok(Vec::new()),
        Some(_) => Ok(vec![String::from_utf8_lossy(v).into_owned()]),
    }
}

/// The string members of the object at `span` (labels).
pub(crate) fn string_map_at(b: &[u8], span: &Option<Range<usize>>) -> R<Vec<(String, String)>> {
    let Some(span) = span else {
        return Ok(Vec::new());
    };
    if b.get(span.start) != Some(&b'{') {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut s = Scanner {
        b: &b[..span.end],
        pos: span.start + 1,
    };
    loop {
        s.ws();
        match s.peek() {
            Some(b'}') | None => break,
            Some(b',') => s.pos += 1,
            Some(b'"') => {
                let k = s.string()?.into_owned();
                s.ws();
                s.pos += 1; // ':' (validated by the first pass)
                s.ws();
                if s.peek() == Some(b'"') {
                    out.push((k, s.string()?.into_owned()));
                } else {
                    s.skip_value(1)?;
                }
            }
            Some(_) => return s.unexpected("a string key"),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Decoded objects and events.

/// What the scan pulled out of one object. Ranges are relative to the object's bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub labels: Vec<(String, String)>,
    pub deleting: bool,
    /// `metadata.generation` (0 when absent: the resource does not count generations).
    pub generation: i64,
    /// A fingerprint of `metadata.annotations`' bytes (0 when absent or empty), for the
    /// annotations-changed predicate: equal annotations serialize to equal bytes.
    pub annotations: u64,
    pub initial_events_end: bool,
    /// The value of `metadata.managedFields`, if present.
    pub managed_fields: Option<Range<usize>>,
    /// The value of `metadata.ownerReferences`, if present and the schema captures it.
    pub owner_references: Option<Range<usize>>,
    /// One list of values per user index of the schema this was decoded with.
    pub index_values: Vec<Vec<String>>,
    pub schema_id: u64,
    /// Status fields (ERROR events).
    pub code: Option<i64>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl Meta {
    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn key(&self) -> Option<String> {
        let name = self.name.as_deref()?;
        Some(match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
            _ => name.to_string(),
        })
    }
}

/// A fingerprint of an annotations object's bytes (one hash per process; never stored
/// or compared across processes); `{}` and `null` count as absent (0).
pub(crate) fn fingerprint(b: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    use std::sync::OnceLock;
    static HASHER: OnceLock<hashbrown::DefaultHashBuilder> = OnceLock::new();
    let inner = b.strip_prefix(b"{").and_then(|b| b.strip_suffix(b"}"));
    if b == b"null" || inner.is_some_and(|i| i.iter().all(u8::is_ascii_whitespace)) {
        return 0;
    }
    HASHER.get_or_init(Default::default).hash_one(b) | 1
}

pub(crate) fn meta_from_spans(
    obj: &[u8],
    base: usize,
    spans: &[Option<Range<usize>>],
    schema: &Schema,
) -> R<Meta> {
    // Spans are relative to the buffer the object was scanned in; `obj` starts at `base`.
    let rel = |i: usize| -> Option<Range<usize>> {
        spans[i].as_ref().map(|r| (r.start - base)..(r.end - base))
    };
    let code = rel(SLOT_CODE).and_then(|r| std::str::from_utf8(&obj[r]).ok()?.parse().ok());
    let mut index_values = Vec::with_capacity(schema.index_slots.len());
    for &slot in &schema.index_slots {
        index_values.push(index_values_at(obj, &rel(slot))?);
    }
    Ok(Meta {
        namespace: string_at(obj, &rel(SLOT_NAMESPACE))?,
        name: string_at(obj, &rel(SLOT_NAME))?,
        uid: string_at(obj, &rel(SLOT_UID))?,
        resource_version: string_at(obj, &rel(SLOT_RV))?,
        labels: string_map_at(obj, &rel(SLOT_LABELS))?,
        deleting: rel(SLOT_DELETION).is_some_and(|r| obj[r] != *b"null"),
        generation: rel(SLOT_GENERATION)
            .and_then(|r| std::str::from_utf8(&obj[r]).ok()?.parse().ok())
            .unwrap_or(0),
        annotations: rel(SLOT_ANNOTATIONS).map_or(0, |r| fingerprint(&obj[r])),
        initial_events_end: string_at(obj, &rel(SLOT_INITIAL_END))?.as_deref() == Some("true"),
        managed_fields: rel(SLOT_MANAGED),
        owner_references: rel(SLOT_OWNERS),
        index_values,
        schema_id: schema.id,
        code,
        reason: string_at(obj, &rel(SLOT_REASON))?,
        message: string_at(obj, &rel(SLOT_MESSAGE))?,
    })
}

/// Decodes one JSON object (e.g. a list item or a stored object) with `schema`.
pub fn decode_object(raw: &[u8], schema: &Schema) -> Result<Meta, SyntaxError> {
    let mut s = Scanner::new(raw);
    s.ws();
    if s.peek() != Some(b'{') {
        return s.unexpected("an object");
    }
    let start = s.pos;
    let mut spans = vec![None; schema.slot_count()];
    s.object(Some((schema, schema.object_root)), &mut spans, 0)?;
    let end = s.pos;
    s.end()?;
    meta_from_spans(&raw[start..end], start, &spans, schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths_capture_strings_arrays_and_scalars() {
        let s = Schema::new(&[
            vec!["spec".into(), "nodeName".into()],
            vec!["metadata".into(), "labels".into(), "app".into()],
            vec!["spec".into(), "hosts".into()],
            vec!["spec".into(), "replicas".into()],
            vec!["spec".into(), "missing".into()],
        ]);
        let obj = br#"{"metadata":{"name":"a","labels":{"app":"web"}},"spec":{"nodeName":"n1","hosts":["x","y"],"replicas":3}}"#;
        let m = decode_object(obj, &s).unwrap();
        assert_eq!(m.labels, vec![("app".into(), "web".into())]);
        assert_eq!(
            m.index_values,
            vec![
                vec!["n1".to_string()],
                vec!["web".to_string()],
                vec!["x".to_string(), "y".to_string()],
                vec!["3".to_string()],
                vec![],
            ]
        );
    }
}
