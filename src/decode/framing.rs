//! Byte framing: from the bytes of one document to the JSON values in it.
//!
//! A document (a file, a webhook body, stdin) may hold JSON lines, one
//! pretty-printed value, or several values back to back. A value that is not
//! valid JSON becomes one bad record, and reading resumes at the next line
//! that starts a value. Invalid UTF-8 is replaced only to keep parsing: the
//! record that holds it is rejected by itself (see [`Decoder::reject_if_replaced`]).

use std::ops::Range;

use serde_json::value::RawValue;

use super::DecodeOptions;
use super::outcome::{BadReason, Decoded};
use super::shape::Decoder;

/// Decodes bytes that should be UTF-8. Invalid sequences are replaced by
/// U+FFFD only to keep parsing; every record that contains one is then
/// rejected as `invalid_utf8` on its own, and the records around it (the rest
/// of a webhook batch, other lines of a file) are kept. Nothing is silently
/// replaced.
pub(super) fn decode_bytes(bytes: &[u8], options: &DecodeOptions, out: &mut Decoded) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        decode_text(text, &[], options, out);
        return;
    }
    let mut text = String::with_capacity(bytes.len() + 16);
    let mut replaced = Vec::new();
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            replaced.push(text.len()..text.len() + '\u{FFFD}'.len_utf8());
            text.push('\u{FFFD}');
        }
    }
    decode_text(&text, &replaced, options, out);
}

/// Decodes a document in which invalid UTF-8 was replaced by U+FFFD at the
/// byte ranges `replaced`.
fn decode_text(text: &str, replaced: &[Range<usize>], options: &DecodeOptions, out: &mut Decoded) {
    let (text, replaced) = match text.strip_prefix('\u{feff}') {
        Some(rest) => (rest, replaced.iter().map(|r| r.start.saturating_sub(3)..r.end.saturating_sub(3)).collect()),
        None => (text, replaced.to_vec()),
    };
    let mut decoder = Decoder { options: *options, out, text, lines: LineIndex::new(text), replaced };
    if decoder.replaced.is_empty() && decoder.audit_event_list_in_one_pass() {
        return;
    }
    let mut offset = 0usize;
    'document: while offset < text.len() {
        let rest = &text[offset..];
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<&RawValue>();
        loop {
            let before = stream.byte_offset();
            match stream.next() {
                None => break 'document,
                Some(Ok(raw)) => {
                    let line = decoder.locate(raw, 1);
                    decoder.value(raw, line, 0, None);
                }
                Some(Err(err)) => {
                    let error_line = decoder.lines.line_of(offset) + err.line().saturating_sub(1);
                    let broken = offset + before;
                    if err.is_eof()
                        && let Some(items) = complete_items_of_truncated_list(&text[broken..])
                    {
                        // A body cut off mid-list: the complete records before
                        // the cut are kept, the cut-off tail is one bad record.
                        let kept = items.len();
                        for item in items {
                            let line = decoder.locate(item, error_line);
                            decoder.value(item, line, 1, None);
                        }
                        decoder.out.reject(
                            BadReason::InvalidJson,
                            error_line,
                            format!("the document ends inside a list, after {kept} complete items (kept): {err}"),
                        );
                        break 'document;
                    }
                    decoder.out.reject(BadReason::InvalidJson, error_line, err.to_string());
                    // Resume at the next line that starts a top-level value,
                    // searching from where the broken value starts (not from the
                    // end of the value before it, which would find it again).
                    let broken = broken + (text[broken..].len() - text[broken..].trim_start().len());
                    offset = next_value_start(text, broken);
                    continue 'document;
                }
            }
        }
    }
}

/// The complete items of a list wrapper (`{..., "items": [...`) that the
/// document cuts off: `None` when `value` is not such a wrapper.
fn complete_items_of_truncated_list(value: &str) -> Option<Vec<&RawValue>> {
    let value = value.trim_start();
    if !value.starts_with('{') {
        return None;
    }
    let key = value.find("\"items\"")?;
    let after_key = value[key + "\"items\"".len()..].trim_start();
    let mut rest = after_key.strip_prefix(':')?.trim_start().strip_prefix('[')?;
    let mut items = Vec::new();
    loop {
        rest = rest.trim_start();
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<&RawValue>();
        match stream.next() {
            Some(Ok(item)) => {
                items.push(item);
                rest = rest[stream.byte_offset()..].trim_start();
                match rest.as_bytes().first() {
                    Some(b',') => rest = &rest[1..],
                    _ => return Some(items), // `]` (the cut came later) or the end
                }
            }
            _ => return Some(items),
        }
    }
}

/// Byte offsets of line starts, to report 1-based line numbers.
pub(super) struct LineIndex {
    newlines: Vec<usize>,
}

impl LineIndex {
    pub(super) fn new(text: &str) -> Self {
        // memchr finds newlines many bytes at a time: a byte-by-byte scan was
        // an eighth of a whole replay's time.
        let newlines = memchr::memchr_iter(b'\n', text.as_bytes()).collect();
        LineIndex { newlines }
    }

    pub(super) fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < offset) + 1
    }
}

/// The byte offset of the next line after `from` that begins with `{` or `[`
/// in column 0, or the end of the text.
fn next_value_start(s: &str, from: usize) -> usize {
    let bytes = s.as_bytes();
    let mut i = from;
    while let Some(nl) = memchr::memchr(b'\n', &bytes[i..]) {
        i += nl + 1;
        if matches!(bytes.get(i), Some(b'{') | Some(b'[')) {
            return i;
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use crate::decode::{BadReason, DecodeOptions, decode};

    const GOOD: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","stage":"ResponseComplete","verb":"create","user":{"username":"u"},"objectRef":{"resource":"configmaps","namespace":"d","name":"c"},"responseStatus":{"code":201},"stageTimestamp":"2026-11-21T22:17:46Z"}"#;

    #[test]
    fn a_broken_line_is_one_bad_record_and_reading_resumes_at_the_next_value() {
        let text = format!("{GOOD}\n{{\"auditID\": \"x\",,}}\n{}\n", GOOD.replace("\"a\"", "\"b\""));
        let decoded = decode(text.as_bytes(), &DecodeOptions::default());
        assert_eq!(decoded.records.len(), 2);
        assert_eq!(decoded.bad.iter().map(|b| (b.reason, b.line)).collect::<Vec<_>>(), [(BadReason::InvalidJson, 2)]);
    }

    #[test]
    fn a_list_cut_off_keeps_its_complete_items_and_counts_the_tail_once() {
        let items: Vec<String> = (0..3).map(|i| GOOD.replace("\"a\"", &format!("\"a{i}\""))).collect();
        let whole =
            format!("{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[{}]}}", items.join(","));
        // Cut inside the third item.
        let cut = &whole[..whole.len() - GOOD.len() / 2];
        let decoded = decode(cut.as_bytes(), &DecodeOptions::default());
        assert_eq!(decoded.records.len(), 2, "{:?}", decoded.bad);
        assert_eq!(decoded.bad.len(), 1);
        assert_eq!(decoded.bad[0].reason, BadReason::InvalidJson);
        assert!(decoded.bad[0].detail.contains("after 2 complete items"), "{}", decoded.bad[0].detail);
        // Cut between items: both kept, still one bad record.
        let between = &whole[..whole.find(&items[2]).unwrap()];
        let decoded = decode(between.as_bytes(), &DecodeOptions::default());
        assert_eq!((decoded.records.len(), decoded.bad.len()), (2, 1));
    }

    #[test]
    fn a_byte_order_mark_and_invalid_utf8_cost_nothing_but_the_record_holding_the_bytes() {
        let mut bytes = "\u{feff}".as_bytes().to_vec();
        bytes.extend(GOOD.as_bytes());
        bytes.push(b'\n');
        bytes.extend(
            GOOD.replace("\"u\"", "\"u\u{1}\"")
                .replace("\"a\"", "\"b\"")
                .bytes()
                .map(|b| if b == 1 { 0xff } else { b }),
        );
        let decoded = decode(&bytes, &DecodeOptions::default());
        assert_eq!(decoded.records.len(), 1);
        assert_eq!(decoded.bad.iter().map(|b| (b.reason, b.line)).collect::<Vec<_>>(), [(BadReason::InvalidUtf8, 2)]);
    }
}
