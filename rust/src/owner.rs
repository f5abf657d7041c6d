//! Owner mapping: an owned object (a ConfigMap) maps to the key of its controller owner
//! (the Widget), as controller-runtime's `EnqueueRequestForOwner(..., OnlyControllerOwner())`.
//!
//! ```text
//! metadata.ownerReferences ─▶ the reference with controller: true whose apiVersion's
//!   group and kind are the primary's ─▶ "<owned ns>/<name>" ("<name>": cluster-scoped)
//! ```
//!
//! A watch event's references are captured by the event's own scan (a schema
//! `with_owner_references`); a stored object's (the old side of an update, a relist
//! tombstone) are found by `references_span`, which reads the object only up to the end
//! of its `metadata`.
use crate::json::scanner::Scanner;
use crate::json::{Meta, SyntaxError};
use crate::store::{Entry, StoreError};
use std::borrow::Cow;
use std::ops::Range;

/// The primary kind owned objects map to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerMapping {
    api_version: String,
    kind: String,
    namespaced: bool,
}

/// `"example.com/v1"` → `"example.com"`; `"v1"` (the core group) → `""`. The one
/// definition: Python's mappers use it through `_native.group_of`.
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

impl OwnerMapping {
    /// Owned objects map to owners of `api_version`'s group and `kind`; a `namespaced`
    /// owner's key carries the owned object's namespace.
    pub fn new(api_version: &str, kind: &str, namespaced: bool) -> Self {
        OwnerMapping {
            api_version: api_version.into(),
            kind: kind.into(),
            namespaced,
        }
    }

    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn namespaced(&self) -> bool {
        self.namespaced
    }

    /// Group and kind are compared, not the version: controller-runtime does the same,
    /// so references written under an older version of the primary still map.
    fn matches(&self, api_version: &str, kind: &str) -> bool {
        kind == self.kind && group_of(api_version) == group_of(&self.api_version)
    }

    /// The key of the owner named `name` of an object in `namespace`.
    fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced && !ns.is_empty() => format!("{ns}/{name}"),
            _ => name.to_string(),
        }
    }

    /// The name of the controller owner in the `ownerReferences` value at `span` of `b`
    /// (an array already validated by a scan); None if no reference has
    /// `controller: true` with this group and kind.
    fn owner_name(&self, b: &[u8], span: &Range<usize>) -> Result<Option<String>, SyntaxError> {
        let mut s = Scanner {
            b: b.get(..span.end).unwrap_or_default(),
            pos: span.start,
        };
        if s.peek() != Some(b'[') {
            return Ok(None);
        }
        s.pos += 1;
        loop {
            s.ws();
            match s.peek() {
                Some(b']') | None => return Ok(None),
                Some(b',') => s.pos += 1,
                Some(b'{') => {
                    if let Some(name) = self.reference(&mut s)? {
                        return Ok(Some(name));
                    }
                }
                Some(_) => s.skip_value(1)?,
            }
        }
    }

    /// At a `{`: reads one owner reference; its name if it is the controller we map to.
    fn reference(&self, s: &mut Scanner<'_>) -> Result<Option<String>, SyntaxError> {
        s.pos += 1;
        let mut api_version: Option<Cow<'_, str>> = None;
        let mut kind: Option<Cow<'_, str>> = None;
        let mut name: Option<Cow<'_, str>> = None;
        let mut controller = false;
        loop {
            s.ws();
            match s.peek() {
                Some(b'}') => {
                    s.pos += 1;
                    break;
                }
                Some(b',') => s.pos += 1,
                Some(b'"') => {
                    let key = s.string()?;
                    s.ws();
                    if s.peek() != Some(b':') {
                        return s.unexpected("':'");
                    }
                    s.pos += 1;
                    s.ws();
                    let string = s.peek() == Some(b'"');
                    match &*key {
                        "apiVersion" if string => api_version = Some(s.string()?),
                        "kind" if string => kind = Some(s.string()?),
                        "name" if string => name = Some(s.string()?),
                        "controller" => {
                            let at = s.pos;
                            s.skip_value(2)?;
                            controller = &s.b[at..s.pos] == b"true";
                        }
                        _ => s.skip_value(2)?,
                    }
                }
                _ => return s.unexpected("a string key"),
            }
        }
        let (Some(api_version), Some(kind), Some(name)) = (api_version, kind, name) else {
            return Ok(None);
        };
        let mapped = controller && !name.is_empty() && self.matches(&api_version, &kind);
        Ok(mapped.then(|| name.into_owned()))
    }

    /// The owner key of a decoded object (`meta` from a schema `with_owner_references`;
    /// `obj` the object's bytes).
    pub fn of_meta(&self, obj: &[u8], meta: &Meta) -> Result<Option<String>, SyntaxError> {
        let Some(span) = &meta.owner_references else {
            return Ok(None);
        };
        let name = self.owner_name(obj, span)?;
        Ok(name.map(|n| self.key(meta.namespace.as_deref(), &n)))
    }

    /// The owner key of one object's JSON bytes (its namespace read from it too).
    pub fn owner_key(&self, raw: &[u8]) -> Result<Option<String>, SyntaxError> {
        let Some(found) = scan_metadata(raw)? else {
            return Ok(None);
        };
        let Some(span) = found.references else {
            return Ok(None);
        };
        let name = self.owner_name(raw, &span)?;
        Ok(name.map(|n| self.key(found.namespace.as_deref(), &n)))
    }

    /// The owner key of the object stored as `entry` under `key`.
    pub fn of_entry(&self, key: &str, entry: &Entry) -> Result<Option<String>, StoreError> {
        let raw = entry.raw()?;
        let Some(found) = scan_metadata(&raw)? else {
            return Ok(None);
        };
        let Some(span) = found.references else {
            return Ok(None);
        };
        let name = self.owner_name(&raw, &span)?;
        Ok(name.map(|n| self.key(entry.namespace(key), &n)))
    }
}

/// What `scan_metadata` found in an object's `metadata`.
struct Found {
    namespace: Option<String>,
    references: Option<Range<usize>>,
}

/// Reads an object up to the end of its `metadata` (the rest is neither read nor
/// validated): its namespace and the span of its `ownerReferences`. None if the object
/// has no `metadata` object.
fn scan_metadata(raw: &[u8]) -> Result<Option<Found>, SyntaxError> {
    let mut s = Scanner::new(raw);
    s.ws();
    if s.peek() != Some(b'{') {
        return s.unexpected("an object");
    }
    s.pos += 1;
    while let Some(key) = next_member(&mut s)? {
        if key == "metadata" && s.peek() == Some(b'{') {
            s.pos += 1;
            let mut found = Found {
                namespace: None,
                references: None,
            };
            while let Some(key) = next_member(&mut s)? {
                let start = s.pos;
                match &*key {
                    "namespace" if s.peek() == Some(b'"') => {
                        found.namespace = Some(s.string()?.into_owned());
                    }
                    "ownerReferences" => {
                        s.skip_value(2)?;
                        found.references = Some(start..s.pos);
                    }
                    _ => s.skip_value(2)?,
                }
            }
            return Ok(Some(found));
        }
        s.skip_value(1)?;
    }
    Ok(None)
}

/// Inside an object: the next member's key, leaving `s` at its value; None at the `}`.
fn next_member<'a>(s: &mut Scanner<'a>) -> Result<Option<Cow<'a, str>>, SyntaxError> {
    s.ws();
    if s.peek() == Some(b',') {
        s.pos += 1;
        s.ws();
    }
    match s.peek() {
        Some(b'}') => {
            s.pos += 1;
            Ok(None)
        }
        Some(b'"') => {
            let key = s.string()?;
            s.ws();
            if s.peek() != Some(b':') {
                return s.unexpected("':'");
            }
            s.pos += 1;
            s.ws();
            Ok(Some(key))
        }
        _ => s.unexpected("a string key"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{decode_object, Schema};

    fn widgets() -> OwnerMapping {
        OwnerMapping::new("example.com/v1", "Widget", true)
    }

    fn reference(api_version: &str, kind: &str, name: &str, controller: Option<bool>) -> String {
        let controller = controller.map_or(String::new(), |c| format!(r#","controller":{c}"#));
        format!(
            r#"{{"apiVersion":"{api_version}","kind":"{kind}","name":"{name}","uid":"u-{name}"{controller},"blockOwnerDeletion":true}}"#
        )
    }

    fn config_map(namespace: Option<&str>, references: &[String]) -> String {
        let ns = namespace.map_or(String::new(), |ns| format!(r#","namespace":"{ns}""#));
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm"{ns},"ownerReferences":[{}]}},"data":{{"a":"b"}}}}"#,
            references.join(",")
        )
    }

    /// The owner key both ways: from the object's own scan, and from its bytes alone.
    fn owner_of(mapping: &OwnerMapping, obj: &str) -> Option<String> {
        let meta = decode_object(obj.as_bytes(), &Schema::with_owner_references(&[])).unwrap();
        let scanned = mapping.of_meta(obj.as_bytes(), &meta).unwrap();
        assert_eq!(mapping.owner_key(obj.as_bytes()).unwrap(), scanned);
        scanned
    }

    #[test]
    fn the_controller_owner_of_the_primary_kind_gives_the_key() {
        let obj = config_map(
            Some("ns"),
            &[reference("example.com/v1", "Widget", "w", Some(true))],
        );
        assert_eq!(owner_of(&widgets(), &obj).as_deref(), Some("ns/w"));
    }

    #[test]
    fn owners_that_are_not_the_controller_are_ignored() {
        for controller in [Some(false), None] {
            let obj = config_map(
                Some("ns"),
                &[reference("example.com/v1", "Widget", "w", controller)],
            );
            assert_eq!(owner_of(&widgets(), &obj), None, "{controller:?}");
        }
    }

    #[test]
    fn a_controller_of_another_kind_or_group_is_ignored() {
        for (api_version, kind) in [
            ("example.com/v1", "Gadget"),
            ("other.io/v1", "Widget"),
            ("v1", "Widget"),
        ] {
            let obj = config_map(Some("ns"), &[reference(api_version, kind, "w", Some(true))]);
            assert_eq!(owner_of(&widgets(), &obj), None, "{api_version} {kind}");
        }
    }

    #[test]
    fn another_version_of_the_primary_group_still_maps() {
        let obj = config_map(
            Some("ns"),
            &[reference("example.com/v1beta1", "Widget", "w", Some(true))],
        );
        assert_eq!(owner_of(&widgets(), &obj).as_deref(), Some("ns/w"));
    }

    #[test]
    fn among_several_owners_the_matching_controller_is_chosen() {
        let obj = config_map(
            Some("ns"),
            &[
                reference("example.com/v1", "Widget", "plain", Some(false)),
                reference("apps/v1", "Deployment", "d", None),
                reference("example.com/v1", "Widget", "boss", Some(true)),
                reference("example.com/v1", "Gadget", "g", None),
            ],
        );
        assert_eq!(owner_of(&widgets(), &obj).as_deref(), Some("ns/boss"));
    }

    #[test]
    fn an_object_without_owner_references_maps_to_nothing() {
        let bare = r#"{"metadata":{"name":"cm","namespace":"ns"}}"#;
        assert_eq!(owner_of(&widgets(), bare), None);
        let empty = config_map(Some("ns"), &[]);
        assert_eq!(owner_of(&widgets(), &empty), None);
        let null = r#"{"metadata":{"name":"cm","ownerReferences":null}}"#;
        assert_eq!(owner_of(&widgets(), null), None);
        let unnamed = config_map(
            Some("ns"),
            &[reference("example.com/v1", "Widget", "", Some(true))],
        );
        assert_eq!(owner_of(&widgets(), &unnamed), None);
    }

    #[test]
    fn a_cluster_scoped_owner_gives_just_its_name() {
        let nodes = OwnerMapping::new("example.com/v1", "Widget", false);
        let obj = config_map(
            Some("ns"),
            &[reference("example.com/v1", "Widget", "w", Some(true))],
        );
        assert_eq!(owner_of(&nodes, &obj).as_deref(), Some("w"));
        let cluster_scoped = config_map(
            None,
            &[reference("example.com/v1", "Widget", "w", Some(true))],
        );
        assert_eq!(owner_of(&widgets(), &cluster_scoped).as_deref(), Some("w"));
    }

    #[test]
    fn escaped_strings_and_whitespace_in_references_are_read() {
        let obj = r#"{ "metadata" : { "namespace" : "n\u0073" , "ownerReferences" : [ { "kind" : "Wid\u0067et" , "controller" : true , "name" : "a\/b" , "apiVersion" : "example.com/v1" } ] } }"#;
        assert_eq!(owner_of(&widgets(), obj).as_deref(), Some("ns/a/b"));
    }

    #[test]
    fn a_stored_object_is_read_only_up_to_the_end_of_its_metadata() {
        // Bytes after metadata are not read: a stored object was validated when stored.
        let obj = br#"{"kind":"ConfigMap","metadata":{"namespace":"ns","ownerReferences":[{"apiVersion":"example.com/v1","kind":"Widget","name":"w","controller":true}]},"data":"#;
        assert_eq!(widgets().owner_key(obj).unwrap().as_deref(), Some("ns/w"));
    }
}
