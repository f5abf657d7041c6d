//! One list response body `{"metadata": {...}, "items": [...]}` decoded: the list's
//! resourceVersion and continue token, and each item's byte range and `Meta`.
use crate::json::extract::{meta_from_spans, string_at};
use crate::json::scanner::Scanner;
use crate::json::schema::*;
use crate::json::{fail, Meta, SyntaxError};
use std::ops::Range;

/// One list page: its metadata and the items' ranges and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct PageInfo {
    pub resource_version: Option<String>,
    pub continue_token: Option<String>,
    pub remaining_item_count: Option<i64>,
    pub items: Vec<(Range<usize>, Meta)>,
}

/// Decodes a list response body (`{"metadata": {...}, "items": [...]}`).
pub fn decode_page(body: &[u8], schema: &Schema) -> Result<PageInfo, SyntaxError> {
    let mut s = Scanner::new(body);
    s.ws();
    if s.peek() != Some(b'{') {
        return s.unexpected("an object");
    }
    let mut spans = vec![None; FIXED_SLOTS];
    let mut items = Vec::new();
    s.pos += 1;
    s.ws();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            s.ws();
            if s.peek() != Some(b'"') {
                return s.unexpected("a string key");
            }
            let key = s.string()?;
            s.ws();
            if s.peek() != Some(b':') {
                return s.unexpected("':'");
            }
            s.pos += 1;
            s.ws();
            if key == "items" && s.peek() == Some(b'[') {
                s.pos += 1;
                s.ws();
                if s.peek() == Some(b']') {
                    s.pos += 1;
                } else {
                    loop {
                        s.ws();
                        if s.peek() != Some(b'{') {
                            return s.unexpected("an object in \"items\"");
                        }
                        let start = s.pos;
                        let mut item_spans = vec![None; schema.slot_count()];
                        s.object(Some((schema, schema.object_root)), &mut item_spans, 2)?;
                        let meta =
                            meta_from_spans(&body[start..s.pos], start, &item_spans, schema)?;
                        if meta.name.is_none() {
                            return fail(start, "list item without metadata.name");
                        }
                        items.push((start..s.pos, meta));
                        s.ws();
                        match s.peek() {
                            Some(b',') => s.pos += 1,
                            Some(b']') => {
                                s.pos += 1;
                                break;
                            }
                            _ => return s.unexpected("',' or ']'"),
                        }
                    }
                }
            } else if key == "metadata" && s.peek() == Some(b'{') {
                let node = schema
                    .lookup(schema.list_root, b"metadata")
                    .unwrap_or(schema.list_root);
                s.object(Some((schema, node)), &mut spans, 1)?;
            } else {
                s.skip_value(1)?;
            }
            s.ws();
            match s.peek() {
                Some(b',') => s.pos += 1,
                Some(b'}') => {
                    s.pos += 1;
                    break;
                }
                _ => return s.unexpected("',' or '}'"),
            }
        }
    }
    s.end()?;
    let remaining = spans[SLOT_LIST_REMAINING]
        .clone()
        .and_then(|r| std::str::from_utf8(&body[r]).ok()?.parse().ok());
    Ok(PageInfo {
        resource_version: string_at(body, &spans[SLOT_LIST_RV])?,
        continue_token: string_at(body, &spans[SLOT_LIST_CONTINUE])?.filter(|c| !c.is_empty()),
        remaining_item_count: remaining,
        items,
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
    fn a_list_page_yields_its_items_and_continue_token() {
        let body = format!(
            r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"7","continue":"abc","remainingItemCount":3}},"items":[{POD},{POD}]}}"#
        );
        let page = decode_page(body.as_bytes(), &schema()).unwrap();
        assert_eq!(page.resource_version.as_deref(), Some("7"));
        assert_eq!(page.continue_token.as_deref(), Some("abc"));
        assert_eq!(page.remaining_item_count, Some(3));
        assert_eq!(page.items.len(), 2);
        assert_eq!(&body.as_bytes()[page.items[1].0.clone()], POD.as_bytes());
        let body = br#"{"metadata":{"resourceVersion":"8","continue":""},"items":[]}"#;
        let page = decode_page(body, &schema()).unwrap();
        assert_eq!(page.continue_token, None);
        assert!(page.items.is_empty());
    }
}
