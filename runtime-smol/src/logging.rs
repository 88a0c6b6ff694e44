//! Logs with `tracing`: readable lines by default, JSON lines on request, on standard error.
//! Every line names the instance ([`crate::config::Settings::instance`]): text lines end
//! with `instance=NAME`, JSON lines begin with `"instance":"NAME"`, so that the lines of a
//! fleet's instances can be told apart once collected in one place.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Installs the global log subscriber. Calling it twice keeps the first.
pub fn init(format: LogFormat, level: tracing::Level, instance: &str) {
    let writer = Named {
        tag: match format {
            LogFormat::Text => format!(" instance={instance}"),
            LogFormat::Json => {
                let mut quoted = String::new();
                for c in instance.chars() {
                    // The name is printable ASCII (settings check it); escape what JSON needs.
                    if c == '"' || c == '\\' {
                        quoted.push('\\');
                    }
                    quoted.push(c);
                }
                format!("\"instance\":\"{quoted}\",")
            }
        },
        json: format == LogFormat::Json,
    };
    let writer: &'static Named = Box::leak(Box::new(writer));
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(writer)
        .with_target(false)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Standard error, with the instance written into each line.
struct Named {
    tag: String,
    json: bool,
}

/// One event's writer: the formatter hands it the whole line at once.
struct Line<'a>(&'a Named);

impl<'a> MakeWriter<'a> for &'static Named {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(self)
    }
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = tagged(buf, &self.0.tag, self.0.json);
        io::stderr().lock().write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// `buf` (one formatted event) with `tag` in it: after the `{` of a JSON object, or before
/// the line's end for text. Anything else passes unchanged.
fn tagged(buf: &[u8], tag: &str, json: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len() + tag.len());
    if json {
        if let Some(rest) = buf.strip_prefix(b"{") {
            out.push(b'{');
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(rest);
            return out;
        }
    } else if let Some(body) = buf.strip_suffix(b"\n") {
        out.extend_from_slice(body);
        out.extend_from_slice(tag.as_bytes());
        out.push(b'\n');
        return out;
    }
    out.extend_from_slice(buf);
    out
}

#[cfg(test)]
mod tests {
    use super::tagged;

    #[test]
    fn lines_name_the_instance() {
        assert_eq!(
            tagged(b"2026 INFO login user=a\n", " instance=x", false),
            b"2026 INFO login user=a instance=x\n"
        );
        assert_eq!(
            tagged(b"{\"level\":\"INFO\"}\n", "\"instance\":\"x\",", true),
            b"{\"instance\":\"x\",\"level\":\"INFO\"}\n"
        );
        assert_eq!(tagged(b"part", " instance=x", false), b"part");
    }
}
