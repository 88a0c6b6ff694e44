//! The audit log: its JSON lines read with `serde_json` into [`AuditRecord`]s.

use std::fs;
use std::path::Path;

use serde_json::{Map, Value};

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditRecord {
    /// RFC 3339 time.
    pub time: String,
    /// The server instance that wrote it, where the log names one.
    pub instance: Option<String>,
    /// The account.
    pub user: String,
    /// The client's address.
    pub client: String,
    /// The operation.
    pub op: String,
    /// The path (the source of a rename or copy).
    pub path: String,
    /// The target of a rename or copy.
    pub to: Option<String>,
    /// Bytes, where known.
    pub bytes: Option<u64>,
    /// `ok`, an error kind, or `aborted`.
    pub result: String,
}

/// Reads the audit log at `path` (missing: empty).
///
/// # Panics
/// On a line that is not a JSON object with the documented keys.
#[must_use]
pub fn audit(path: &Path) -> Vec<AuditRecord> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_audit_line(l).unwrap_or_else(|| panic!("bad audit line: {l}")))
        .collect()
}

/// Parses one audit line: a JSON object whose keys `time`, `user`, `client`, `op`, `path`
/// and `result` are strings, `to` a string or null, and `bytes` an unsigned number or
/// null; `None` when it is not.
#[must_use]
pub fn parse_audit_line(line: &str) -> Option<AuditRecord> {
    let Value::Object(fields) = serde_json::from_str(line).ok()? else {
        return None;
    };
    let text = |key: &str| fields.get(key)?.as_str().map(str::to_owned);
    Some(AuditRecord {
        time: text("time")?,
        instance: match fields.get("instance") {
            None => None,
            Some(v) => Some(v.as_str()?.to_owned()),
        },
        user: text("user")?,
        client: text("client")?,
        op: text("op")?,
        path: text("path")?,
        to: nullable(&fields, "to", Value::as_str)?.map(str::to_owned),
        bytes: nullable(&fields, "bytes", Value::as_u64)?,
        result: text("result")?,
    })
}

/// A key that must be present, as null (`Some(None)`) or as what `read` makes of it;
/// `None` when it is missing or `read` makes nothing of it.
fn nullable<'a, T>(
    fields: &'a Map<String, Value>,
    key: &str,
    read: impl FnOnce(&'a Value) -> Option<T>,
) -> Option<Option<T>> {
    match fields.get(key)? {
        Value::Null => Some(None),
        value => read(value).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_lines_parse() {
        let r = parse_audit_line(
            r#"{"time":"2026-11-23T10:52:08Z","user":"alice","client":"127.0.0.1:5555","op":"rename","path":"/a \"b\".txt","to":"/c","bytes":null,"result":"ok"}"#,
        )
        .unwrap();
        assert_eq!(r.path, "/a \"b\".txt");
        assert_eq!(r.to.as_deref(), Some("/c"));
        assert_eq!(r.bytes, None);
        let r = parse_audit_line(
            r#"{"time":"t","user":"u","client":"c","op":"upload","path":"/x","to":null,"bytes":123,"result":"ok"}"#,
        )
        .unwrap();
        assert_eq!(r.bytes, Some(123));
        assert!(parse_audit_line("{\"time\":1}").is_none());
    }

    #[test]
    fn audit_lines_missing_or_mistyped_keys_are_refused() {
        let good = r#"{"time":"t","user":"u","client":"c","op":"upload","path":"/x","to":null,"bytes":1,"result":"ok"}"#;
        assert!(parse_audit_line(good).is_some());
        for bad in [
            good.replace(r#""to":null,"#, ""),
            good.replace(r#""bytes":1,"#, ""),
            good.replace(r#""bytes":1"#, r#""bytes":"1""#),
            good.replace(r#""bytes":1"#, r#""bytes":-1"#),
            good.replace(r#""to":null"#, r#""to":2"#),
            good.replace(r#""user":"u""#, r#""user":null"#),
            format!("[{good}]"),
            format!("{good} trailing"),
        ] {
            assert!(parse_audit_line(&bad).is_none(), "{bad}");
        }
        let escaped = good.replace(r#""/x""#, r#""/\u00e9\n""#);
        assert_eq!(parse_audit_line(&escaped).unwrap().path, "/é\n");
    }
}
