//! The audit log: its JSON lines read into [`AuditRecord`]s.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditRecord {
    /// RFC 3339 time.
    pub time: String,
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
/// On a line that is not a flat JSON object with the documented keys.
#[must_use]
pub fn audit(path: &Path) -> Vec<AuditRecord> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_audit_line(l).unwrap_or_else(|| panic!("bad audit line: {l}")))
        .collect()
}

/// Parses one audit line.
#[must_use]
pub fn parse_audit_line(line: &str) -> Option<AuditRecord> {
    let fields = parse_flat_json(line)?;
    let s = |k: &str| match fields.get(k) {
        Some(Json::Str(s)) => Some(s.clone()),
        _ => None,
    };
    Some(AuditRecord {
        time: s("time")?,
        user: s("user")?,
        client: s("client")?,
        op: s("op")?,
        path: s("path")?,
        to: match fields.get("to")? {
            Json::Str(s) => Some(s.clone()),
            Json::Null => None,
            Json::Num(_) => return None,
        },
        bytes: match fields.get("bytes")? {
            Json::Num(n) => Some(*n),
            Json::Null => None,
            Json::Str(_) => return None,
        },
        result: s("result")?,
    })
}

#[derive(Debug)]
enum Json {
    Str(String),
    Num(u64),
    Null,
}

/// A flat JSON object of strings, unsigned numbers and nulls.
fn parse_flat_json(line: &str) -> Option<BTreeMap<String, Json>> {
    let mut chars = line.trim().chars().peekable();
    let mut out = BTreeMap::new();
    if chars.next()? != '{' {
        return None;
    }
    loop {
        if chars.peek() == Some(&'}') {
            chars.next();
            break;
        }
        let key = json_string(&mut chars)?;
        if chars.next()? != ':' {
            return None;
        }
        let value = match chars.peek()? {
            '"' => Json::Str(json_string(&mut chars)?),
            'n' => {
                for c in "null".chars() {
                    if chars.next()? != c {
                        return None;
                    }
                }
                Json::Null
            }
            _ => {
                let mut n = String::new();
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    n.push(chars.next()?);
                }
                Json::Num(n.parse().ok()?)
            }
        };
        out.insert(key, value);
        match chars.next()? {
            ',' => {}
            '}' => break,
            _ => return None,
        }
    }
    chars.next().is_none().then_some(out)
}

fn json_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    if chars.next()? != '"' {
        return None;
    }
    let mut s = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(s),
            '\\' => match chars.next()? {
                'n' => s.push('\n'),
                'r' => s.push('\r'),
                't' => s.push('\t'),
                'b' => s.push('\u{8}'),
                'f' => s.push('\u{c}'),
                'u' => {
                    let hex: String = (0..4).map(|_| chars.next()).collect::<Option<_>>()?;
                    s.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                c => s.push(c),
            },
            c => s.push(c),
        }
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
}
