//! The managedFields cutter: the bytes to remove from an object to drop one member
//! (located by the scan), so a store keeps objects without `metadata.managedFields`.
use std::ops::Range;

/// The object's bytes without its `metadata.managedFields` member (`value` is the range
/// of that member's value in `obj`).
pub fn strip_member(obj: &[u8], value: &Range<usize>) -> Vec<u8> {
    let cut = member_cut(obj, value);
    let mut out = Vec::with_capacity(obj.len() - cut.len());
    out.extend_from_slice(&obj[..cut.start]);
    out.extend_from_slice(&obj[cut.end..]);
    out
}

/// The bytes to cut out of `obj` to drop the member whose value is at `value` (with its
/// key and one separating comma); an empty range if the key cannot be found.
pub fn member_cut(obj: &[u8], value: &Range<usize>) -> Range<usize> {
    let ws = |c: u8| matches!(c, b' ' | b'\n' | b'\r' | b'\t');
    if value.start > value.end || value.end > obj.len() {
        return 0..0;
    }
    // Walk back over `"key" :` to the key's opening quote.
    let mut p = value.start;
    while p > 0 && ws(obj[p - 1]) {
        p -= 1;
    }
    // obj[p - 1] is ':'.
    p = p.saturating_sub(1);
    while p > 0 && ws(obj[p - 1]) {
        p -= 1;
    }
    // obj[p - 1] is the key's closing quote; the key holds no raw quote.
    p = p.saturating_sub(1);
    let key_start = match obj[..p].iter().rposition(|&c| c == b'"') {
        Some(q) => q,
        None => return 0..0,
    };
    let mut before = key_start;
    while before > 0 && ws(obj[before - 1]) {
        before -= 1;
    }
    if before > 0 && obj[before - 1] == b',' {
        // `, "managedFields": [...]` → cut from the comma.
        (before - 1)..value.end
    } else {
        // `{"managedFields": [...], ...` → cut through the following comma, if any.
        let mut after = value.end;
        while after < obj.len() && ws(obj[after]) {
            after += 1;
        }
        if obj.get(after) == Some(&b',') {
            after += 1;
            while after < obj.len() && ws(obj[after]) {
                after += 1;
            }
        } else {
            after = value.end;
        }
        key_start..after
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{decode_object, Schema};

    fn schema() -> Schema {
        Schema::new(&[])
    }

    #[test]
    fn strip_member_removes_managed_fields_wherever_it_sits() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"metadata":{"name":"a","managedFields":[{"x":1}],"uid":"u"}}"#,
                r#"{"metadata":{"name":"a","uid":"u"}}"#,
            ),
            (
                r#"{"metadata":{"managedFields":[{"x":1}], "name":"a"}}"#,
                r#"{"metadata":{"name":"a"}}"#,
            ),
            (
                r#"{"metadata":{"name":"a" , "managedFields" : [] }}"#,
                r#"{"metadata":{"name":"a"  }}"#,
            ),
            (
                r#"{"metadata":{"managedFields":[]},"x":1}"#,
                r#"{"metadata":{},"x":1}"#,
            ),
        ];
        for (input, want) in cases {
            let m = decode_object(input.as_bytes(), &schema()).unwrap();
            let stripped = strip_member(input.as_bytes(), m.managed_fields.as_ref().unwrap());
            assert_eq!(std::str::from_utf8(&stripped).unwrap(), *want);
        }
    }
}
