//! How the text log writes an event's fields: exactly as tracing-subscriber's
//! `DefaultFields` does (`name="value"`, `name=42`, a space between), with a
//! fast path for the fields every request logs.
//!
//! `DefaultFields` writes a string field through `{:?}`, which escapes it
//! one character at a time; with two events per request, that was the
//! largest part of the gateway's own per-request work. A string of printable
//! ASCII without `"` or `\` reads the same escaped or not, so it is written
//! as is; integers and booleans are written directly. Everything else
//! (the message, `%`/`?` values, errors, any other string) is handed to
//! `DefaultFields`' own visitor, so the output is byte for byte the same
//! (tested below against `DefaultFields`).

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The text log's field formatter.
#[derive(Debug, Default)]
pub(super) struct Fields;

impl<'writer> FormatFields<'writer> for Fields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// `DefaultFields`' visitor for one field, continuing this one's line.
    fn default(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        // Metadata of events from the `log` crate: the default visitor
        // skips them (tracing-subscriber's `tracing-log` feature, on here),
        // writing nothing, not even a separator.
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        self.is_empty = false;
    }

    /// Whether `name` is written as is by the default visitor.
    fn plain(field: &Field) -> bool {
        let name = field.name();
        name != "message" && !name.starts_with("r#") && !name.starts_with("log.")
    }

    fn pad(&mut self) -> fmt::Result {
        if self.is_empty {
            self.is_empty = false;
            Ok(())
        } else {
            self.writer.write_char(' ')
        }
    }

    fn direct(&mut self, field: &Field, write: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = self.pad().and_then(|()| {
            self.writer.write_str(field.name())?;
            self.writer.write_char('=')?;
            write(&mut self.writer)
        });
    }
}

/// Printable ASCII other than `"` and `\`: what `{:?}` leaves as it is.
fn unescaped(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if Self::plain(field) && unescaped(value) && !self.writer.has_ansi_escapes() {
            self.direct(field, |w| {
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            });
        } else {
            self.default(field, |v| v.record_str(field, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if Self::plain(field) && !self.writer.has_ansi_escapes() {
            self.direct(field, |w| w.write_str(itoa::Buffer::new().format(value)));
        } else {
            self.default(field, |v| v.record_u64(field, value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if Self::plain(field) && !self.writer.has_ansi_escapes() {
            self.direct(field, |w| w.write_str(itoa::Buffer::new().format(value)));
        } else {
            self.default(field, |v| v.record_i64(field, value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if Self::plain(field) && !self.writer.has_ansi_escapes() {
            self.direct(field, |w| w.write_str(if value { "true" } else { "false" }));
        } else {
            self.default(field, |v| v.record_bool(field, value));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.default(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.default(field, |v| v.record_debug(field, value));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer \"failure\"")]
    struct Outer(#[source] std::io::Error);

    /// Every kind of field the gateway logs, and strings that need escaping.
    fn events() {
        let span = tracing::info_span!("request", request_id = %"0a1b-02", n = 3_u64);
        let _entered = span.enter();
        tracing::info!(
            target: "mcp_auth_gateway::request",
            route = "/mcp", http.method = %http::Method::POST, path = "/mcp",
            rpc.method = "tools/call", status = 200_u16, latency_us = 123_u64,
            sub = Some("alice"), client_id = None::<&str>, decision = "deny",
            reason = %"scope \"x\" missing", "request rejected"
        );
        for s in [
            "plain",
            "with \"quotes\"",
            "back\\slash",
            "tab\there",
            "naïve",
            "\u{1b}[31mred",
            "",
            "bidi\u{202e}",
        ] {
            tracing::warn!(value = s, n = -5_i64, yes = true, float = 1.5_f64, list = ?["a", "b"], "a message with \"quotes\" and \u{1b}[0m");
        }
        let err = Outer(std::io::Error::other("inner"));
        tracing::error!(
            error = &err as &(dyn std::error::Error + 'static),
            r#type = "raw",
            "failed"
        );
        tracing::info!("message only");
        tracing::info!(log.target = "bridged", a = 1_u64, "from the log crate");
        tracing::info!(only = "fields");
    }

    fn render(fast: bool) -> String {
        let out = Buffer::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .without_time();
        if fast {
            tracing::subscriber::with_default(builder.fmt_fields(Fields).finish(), events);
        } else {
            tracing::subscriber::with_default(builder.finish(), events);
        }
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_are_byte_for_byte_those_of_the_default_formatter() {
        let (fast, default) = (render(true), render(false));
        assert_eq!(fast.lines().count(), 13, "{fast}");
        for (f, d) in fast.lines().zip(default.lines()) {
            assert_eq!(f, d);
        }
        assert_eq!(fast, default);
        // The fast path was taken, and the escaped values are escaped.
        assert!(
            fast.contains(r#"route="/mcp" http.method=POST path="/mcp""#),
            "{fast}"
        );
        assert!(fast.contains(r#"value="with \"quotes\"""#), "{fast}");
    }
}
