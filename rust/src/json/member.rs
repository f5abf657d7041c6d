//! One top-level member of an object, located without building anything: what a
//! handler's `obj["metadata"]` needs to parse only that member.
use super::scanner::Scanner;
use super::R;
use std::ops::Range;

/// The span of the value of `obj`'s first top-level member named `key`, or None if it
/// has none. `obj` must be a JSON object (the bytes up to that member are validated on
/// the way; the rest is not read). Objects from the apiserver never repeat a key.
pub fn member_span(obj: &[u8], key: &str) -> R<Option<Range<usize>>> {
    let mut s = Scanner::new(obj);
    s.ws();
    if s.peek() != Some(b'{') {
        return s.unexpected("an object");
    }
    if s.enter(0, b'}')? {
        return Ok(None);
    }
    loop {
        s.ws();
        if s.peek() != Some(b'"') {
            return s.unexpected("a string key");
        }
        let name = s.string()?;
        s.ws();
        if s.peek() != Some(b':') {
            return s.unexpected("':'");
        }
        s.pos += 1;
        s.ws();
        let start = s.pos;
        s.skip_value(1)?;
        if name == key {
            return Ok(Some(start..s.pos));
        }
        s.ws();
        match s.peek() {
            Some(b',') => s.pos += 1,
            Some(b'}') => return Ok(None),
            _ => return s.unexpected("',' or '}'"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(obj: &'a str, key: &str) -> Option<&'a str> {
        member_span(obj.as_bytes(), key).unwrap().map(|r| &obj[r])
    }

    #[test]
    fn finds_a_top_level_member_and_only_a_top_level_one() {
        let obj = r#" { "kind" : "Pod", "spec": {"name": "inner"}, "metadata":{"name":"a"} } "#;
        assert_eq!(get(obj, "kind"), Some(r#""Pod""#));
        assert_eq!(get(obj, "metadata"), Some(r#"{"name":"a"}"#));
        assert_eq!(get(obj, "name"), None);
        assert_eq!(get("{}", "kind"), None);
    }

    #[test]
    fn matches_an_escaped_key_by_its_decoded_name() {
        assert_eq!(get(r#"{"ki\u006ed": 1}"#, "kind"), Some("1"));
    }

    #[test]
    fn rejects_what_is_not_an_object() {
        assert!(member_span(b"[1]", "a").is_err());
        assert!(member_span(br#"{"a" 1}"#, "a").is_err());
    }
}
