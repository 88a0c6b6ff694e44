//! Listing formats: `LIST` (`ls -l`), `NLST` (names), `MLSD`/`MLST` facts (RFC 3659), and
//! the `*`/`?` patterns that `NLST`/`LIST` accept.
//!
//! Pure functions that write one entry at a time into any [`fmt::Write`], so a runtime can
//! stream a listing of any length through one buffer without allocating per entry.

use core::fmt;

use crate::storage::{Entry, FileKind, Metadata};
use crate::time::{MONTHS, UnixTime};

/// The facts `MLSD`/`MLST` report (RFC 3659 §7), as selected by `OPTS MLST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Facts(u8);

impl Facts {
    /// `type`: file, dir or `OS.unix=symlink`.
    pub const TYPE: Self = Self(1);
    /// `size`: bytes, for files.
    pub const SIZE: Self = Self(2);
    /// `modify`: `YYYYMMDDHHMMSS`.
    pub const MODIFY: Self = Self(4);
    /// `perm`: what this user may do (RFC 3659 §7.5.5).
    pub const PERM: Self = Self(8);
    /// `unix.mode`: octal permission bits.
    pub const UNIX_MODE: Self = Self(16);
    /// Every fact Ferry knows, in the order it writes them.
    pub const ALL: Self = Self(31);
    const NAMES: [(Self, &'static str); 5] = [
        (Self::TYPE, "type"),
        (Self::SIZE, "size"),
        (Self::MODIFY, "modify"),
        (Self::PERM, "perm"),
        (Self::UNIX_MODE, "unix.mode"),
    ];

    /// No facts.
    #[must_use]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether every fact of `other` is selected.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The known facts named in an `OPTS MLST` list (`type;size;`); unknown names are ignored,
    /// as RFC 3659 §7.9 asks.
    #[must_use]
    pub fn parse(list: &str) -> Self {
        let mut f = Self::empty();
        for name in list.split(';') {
            for (fact, known) in Self::NAMES {
                if name.eq_ignore_ascii_case(known) {
                    f.0 |= fact.0;
                }
            }
        }
        f
    }

    /// Writes the selected fact names as `OPTS MLST` echoes them: `type;size;`.
    ///
    /// # Errors
    /// Only those of `w`.
    pub fn write_names(self, w: &mut impl fmt::Write) -> fmt::Result {
        for (fact, name) in Self::NAMES {
            if self.contains(fact) {
                write!(w, "{name};")?;
            }
        }
        Ok(())
    }

    /// Writes the `FEAT` line's list: every fact, with `*` after the selected ones.
    ///
    /// # Errors
    /// Only those of `w`.
    pub fn write_feature(self, w: &mut impl fmt::Write) -> fmt::Result {
        for (fact, name) in Self::NAMES {
            let star = if self.contains(fact) { "*" } else { "" };
            write!(w, "{name}{star};")?;
        }
        Ok(())
    }
}

impl Default for Facts {
    fn default() -> Self {
        Self::ALL
    }
}

fn default_mode(kind: FileKind) -> u32 {
    match kind {
        FileKind::Dir => 0o755,
        FileKind::File => 0o644,
        FileKind::Symlink => 0o777,
    }
}

/// Writes the 10-character mode column of `ls -l`: `drwxr-xr-x`.
fn write_mode(w: &mut impl fmt::Write, meta: &Metadata) -> fmt::Result {
    let mode = meta.mode.unwrap_or_else(|| default_mode(meta.kind));
    w.write_char(match meta.kind {
        FileKind::Dir => 'd',
        FileKind::File => '-',
        FileKind::Symlink => 'l',
    })?;
    for (shift, special, on, off) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 7;
        w.write_char(if bits & 4 != 0 { 'r' } else { '-' })?;
        w.write_char(if bits & 2 != 0 { 'w' } else { '-' })?;
        let x = bits & 1 != 0;
        w.write_char(match (mode & special != 0, x) {
            (true, true) => on,
            (true, false) => off,
            (false, true) => 'x',
            (false, false) => '-',
        })?;
    }
    Ok(())
}

/// Writes `n` in `radix` (8 or 10), right-aligned in `width` with `fill`: what `write!` with
/// `{:>12}` does, without the formatting machinery (listings write tens of thousands of
/// numbers).
fn write_number(
    w: &mut impl fmt::Write,
    mut n: u64,
    width: usize,
    fill: u8,
    radix: u64,
) -> fmt::Result {
    let mut buf = [0u8; 24];
    let mut i = buf.len();
    loop {
        i -= 1;
        // A digit: always ASCII.
        buf[i] = b'0' + u8::try_from(n % radix).unwrap_or(0);
        n /= radix;
        if n == 0 {
            break;
        }
    }
    while buf.len() - i < width && i > 0 {
        i -= 1;
        buf[i] = fill;
    }
    // Digits and the fill are ASCII, so this is UTF-8.
    w.write_str(core::str::from_utf8(&buf[i..]).unwrap_or_default())
}

/// Six months, the age past which `ls` shows the year instead of the time.
const RECENT_SECS: i64 = 183 * 86_400;

/// Writes one `LIST` line in the Unix `ls -l` form, ending in CR LF:
///
/// `-rw-r--r--    1 ftp      ftp          1234 Nov 22 16:11 name`
///
/// with the link-count column (rclone misreads sizes without it), owner and group `ftp`, and
/// the time of day for files changed in the last six months (the year otherwise), as
/// FileZilla, WinSCP, lftp, curl and Windows' ftp.exe all parse. `now` decides what is
/// recent.
///
/// # Errors
/// Only those of `w`.
pub(crate) fn write_list_line(
    w: &mut impl fmt::Write,
    entry: &Entry<'_>,
    now: UnixTime,
) -> fmt::Result {
    write_mode(w, &entry.meta)?;
    let size = if entry.meta.is_dir() && entry.meta.size == 0 {
        4096
    } else {
        entry.meta.size
    };
    w.write_str("    1 ftp      ftp      ")?;
    write_number(w, size, 12, b' ', 10)?;
    w.write_char(' ')?;
    let t = entry.meta.modified.unwrap_or(UnixTime(0));
    let dt = t.to_datetime();
    w.write_str(MONTHS[usize::from(dt.month - 1)])?;
    w.write_char(' ')?;
    write_number(w, u64::from(dt.day), 2, b' ', 10)?;
    w.write_char(' ')?;
    if t.0 > now.0 - RECENT_SECS && t.0 <= now.0 + 3600 {
        write_number(w, u64::from(dt.hour), 2, b'0', 10)?;
        w.write_char(':')?;
        write_number(w, u64::from(dt.minute), 2, b'0', 10)?;
    } else {
        write_number(w, u64::try_from(dt.year).unwrap_or(0), 5, b' ', 10)?;
    }
    w.write_char(' ')?;
    w.write_str(entry.name)?;
    w.write_str("\r\n")
}

/// Writes one `NLST` line: the name, after `prefix` and a `/` when a folder was named (so
/// that `NLST sub/*.txt` answers `sub/a.txt`, which Windows' `mget` can fetch).
///
/// # Errors
/// Only those of `w`.
pub(crate) fn write_nlst_line(
    w: &mut impl fmt::Write,
    prefix: Option<&str>,
    name: &str,
) -> fmt::Result {
    if let Some(p) = prefix {
        w.write_str(p)?;
        if !p.ends_with('/') {
            w.write_char('/')?;
        }
    }
    w.write_str(name)?;
    w.write_str("\r\n")
}

/// Writes the facts of one entry, `type=file;size=3;...;` (no name, no line end).
///
/// `writable` is whether the user may change it (the `perm` fact).
///
/// # Errors
/// Only those of `w`.
pub(crate) fn write_facts(
    w: &mut impl fmt::Write,
    meta: &Metadata,
    facts: Facts,
    writable: bool,
) -> fmt::Result {
    if facts.contains(Facts::TYPE) {
        w.write_str(match meta.kind {
            FileKind::File => "type=file;",
            FileKind::Dir => "type=dir;",
            FileKind::Symlink => "type=OS.unix=symlink;",
        })?;
    }
    if facts.contains(Facts::SIZE) && meta.kind != FileKind::Dir {
        w.write_str("size=")?;
        write_number(w, meta.size, 0, b' ', 10)?;
        w.write_char(';')?;
    }
    if facts.contains(Facts::MODIFY)
        && let Some(t) = meta.modified
    {
        let dt = t.to_datetime();
        w.write_str("modify=")?;
        write_number(w, u64::try_from(dt.year).unwrap_or(0), 4, b'0', 10)?;
        for part in [dt.month, dt.day, dt.hour, dt.minute, dt.second] {
            write_number(w, u64::from(part), 2, b'0', 10)?;
        }
        w.write_char(';')?;
    }
    if facts.contains(Facts::PERM) {
        w.write_str("perm=")?;
        w.write_str(match (meta.kind, writable) {
            (FileKind::Dir, true) => "cdeflmp",
            (FileKind::Dir, false) => "el",
            (_, true) => "adfrw",
            (_, false) => "r",
        })?;
        w.write_char(';')?;
    }
    if facts.contains(Facts::UNIX_MODE) {
        let mode = meta.mode.unwrap_or_else(|| default_mode(meta.kind)) & 0o7777;
        w.write_str("unix.mode=0")?;
        write_number(w, u64::from(mode), 0, b'0', 8)?;
        w.write_char(';')?;
    }
    Ok(())
}

/// Writes one `MLSD` line: facts, a space, the name, CR LF (RFC 3659 §7.2).
///
/// # Errors
/// Only those of `w`.
pub(crate) fn write_mlsd_line(
    w: &mut impl fmt::Write,
    entry: &Entry<'_>,
    facts: Facts,
    writable: bool,
) -> fmt::Result {
    write_facts(w, &entry.meta, facts, writable)?;
    write!(w, " {}\r\n", entry.name)
}

/// Whether a name can be shown in a listing: one with CR or LF in it would split the line
/// (and a client's parser with it), so listings leave such names out.
#[must_use]
pub(crate) fn is_listable(name: &str) -> bool {
    !name.bytes().any(|b| b == b'\r' || b == b'\n')
}

/// Whether a path segment is a pattern (`*` or `?` in it).
#[must_use]
pub(crate) fn is_pattern(segment: &str) -> bool {
    segment.contains(['*', '?'])
}

/// Matches `name` against a pattern of `*` (any run) and `?` (one character), in time linear
/// in `name` times a constant for the pattern's length: the greedy matcher keeps one
/// backtrack point, never a stack, so no pattern can make it explode.
#[must_use]
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (&[u8], &[u8]) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && (p[pi] == n[ni] || (p[pi] == b'?' && is_char_start(n[ni]))) {
            pi += 1;
            ni += if p[pi - 1] == b'?' {
                char_len(n[ni])
            } else {
                1
            };
        } else if let Some((sp, sn)) = star {
            // Let the last `*` take one more character and retry after it.
            let next = sn + char_len(n[sn]);
            star = Some((sp, next));
            pi = sp + 1;
            ni = next;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn is_char_start(b: u8) -> bool {
    b & 0xC0 != 0x80
}

fn char_len(b: u8) -> usize {
    match b {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn meta(kind: FileKind, size: u64, t: i64, mode: Option<u32>) -> Metadata {
        Metadata {
            kind,
            size,
            modified: Some(UnixTime(t)),
            mode,
        }
    }

    const NOW: UnixTime = UnixTime(1_795_363_898); // 2026-11-22T16:11:38Z

    /// The `ls -l` line of the entry `name` with `meta`.
    fn list_line(name: &str, meta: Metadata) -> String {
        let mut s = String::new();
        write_list_line(&mut s, &Entry { name, meta }, NOW).unwrap();
        s
    }

    #[test]
    fn list_lines_look_like_ls() {
        assert_eq!(
            list_line("report 1.txt", meta(FileKind::File, 1234, NOW.0 - 60, None)),
            "-rw-r--r--    1 ftp      ftp              1234 Nov 22 16:10 report 1.txt\r\n"
        );
        assert_eq!(
            list_line("old", meta(FileKind::Dir, 0, 1_600_000_000, Some(0o1777))),
            "drwxrwxrwt    1 ftp      ftp              4096 Sep 13  2020 old\r\n"
        );
        let s = list_line("x", meta(FileKind::File, 0, NOW.0, Some(0o6711)));
        assert!(s.starts_with("-rws--s--x"), "{s}");
    }

    #[test]
    fn mlsd_lines_follow_rfc3659() {
        let mut s = String::new();
        let e = Entry {
            name: "a.bin",
            meta: meta(FileKind::File, 3, NOW.0, Some(0o640)),
        };
        write_mlsd_line(&mut s, &e, Facts::ALL, true).unwrap();
        assert_eq!(
            s,
            "type=file;size=3;modify=20261122161138;perm=adfrw;unix.mode=0640; a.bin\r\n"
        );
        s.clear();
        let e = Entry {
            name: "sub",
            meta: meta(FileKind::Dir, 0, NOW.0, None),
        };
        write_mlsd_line(&mut s, &e, Facts::parse("type;PERM;bogus"), false).unwrap();
        assert_eq!(s, "type=dir;perm=el; sub\r\n");
    }

    #[test]
    fn facts_echo_and_feature() {
        let f = Facts::parse("type;perm;size;modify;unix.mode;unix.uid;unix.gid;");
        assert_eq!(f, Facts::ALL);
        let mut s = String::new();
        Facts::parse("size;type").write_names(&mut s).unwrap();
        assert_eq!(s, "type;size;");
        s.clear();
        Facts::parse("size").write_feature(&mut s).unwrap();
        assert_eq!(s, "type;size*;modify;perm;unix.mode;");
    }

    #[test]
    fn nlst_prefixes() {
        let mut s = String::new();
        write_nlst_line(&mut s, None, "a").unwrap();
        write_nlst_line(&mut s, Some("sub"), "b").unwrap();
        write_nlst_line(&mut s, Some("/"), "c").unwrap();
        assert_eq!(s, "a\r\nsub/b\r\n/c\r\n");
    }

    #[test]
    fn globs() {
        let yes = [
            ("*.txt", "a.txt"),
            ("*", ""),
            ("a?c", "abc"),
            ("*a*b*", "xxaxxbxx"),
            ("?", "é"),
            ("*.*", "a.b"),
            ("f*o*o", "foo"),
        ];
        let no = [
            ("*.txt", "a.txt.bak"),
            ("a?c", "ac"),
            ("?", ""),
            ("a", "b"),
            ("*a", "b"),
        ];
        for (p, n) in yes {
            assert!(glob_match(p, n), "{p} {n}");
        }
        for (p, n) in no {
            assert!(!glob_match(p, n), "{p} {n}");
        }
        // A pathological pattern stays fast.
        let name = "a".repeat(4000);
        assert!(!glob_match("*a*a*a*a*a*a*a*a*b", &name));
    }
}
