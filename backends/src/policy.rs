//! Per-user policy: what an account may do where, how much it may store, how fast and from
//! where it may transfer, and [`Policed`], the decorator that enforces the storage side of
//! it for any [`Storage`].
//!
//! Owns the policy's settings and their meaning; never speaks FTP and never sees a socket.
//! The runtime enforces what needs the connection (rates, sessions, addresses) from the same
//! [`Policy`].
//!
//! # Settings
//!
//! A policy is written as the `[users.policy]` table of an account in the users file (and
//! stored as the same TOML text in any other account store). Every key is optional; an
//! account without one behaves exactly as an account without a policy:
//!
//! ```toml
//! [users.policy]
//! quota_size = "10 GiB"          # bytes in the home: a number, or with B, KB, KiB, MB, MiB, GB, GiB, TB, TiB
//! quota_files = 10000            # files in the home
//! rate_up = "10 MiB/s"           # uploads, per user (all of their sessions together)
//! rate_down = "20 MiB/s"         # downloads
//! max_sessions = 3               # logged-in sessions at once (421 past it)
//! allow_from = ["192.0.2.0/24"]  # if set, logins only from these networks
//! deny_from = ["192.0.2.66"]     # never from these (checked first)
//! hidden = [".ftpquota", "*.part"]   # names never listed, opened or created
//! permissions = ["list", "download", "upload", "overwrite", "append", "delete", "rename",
//!                "mkdir", "rmdir", "copy", "chmod", "mtime"]   # in the home; default all
//!
//! [[users.policy.folders]]       # overrides below the home; the first match wins
//! path = "/incoming"             # the folder and everything below it
//! permissions = ["upload"]       # a drop box: upload, but neither list nor download
//! ```
//!
//! Permissions belong to folders, as in SFTPGo: what may be done with an entry is what the
//! folder that holds it allows (listing a folder: what the folder itself allows). A folder
//! `path` is a pattern of the user's folders (`/incoming`, `/public/**`, `/*/private`: `*`
//! and `?` match within one name, `**` any number of names); a rule holds for the folders it
//! matches and everything below them. The first rule that holds for a folder gives its
//! permissions; where none does, `permissions` does. So `/incoming` itself is made, removed
//! or renamed under the home's permissions, and what is inside it under its own. Names are
//! compared byte for byte (on a case-insensitive file system, `/Incoming` is another folder
//! to the rules).
//!
//! # What each operation needs
//!
//! | operation | permission, in the folder that holds the entry |
//! |---|---|
//! | listing a folder | `list`, in that folder itself (without it the listing is empty) |
//! | download | `download` |
//! | upload of a new file | `upload`; `overwrite` too if it replaces one |
//! | append, resumed upload | `append`; `upload` too if it makes the file; `overwrite` if it starts inside it |
//! | delete, make folder, remove folder | `delete`, `mkdir`, `rmdir` |
//! | rename | `rename` at the source and at the target; `overwrite` if it replaces a file; a folder that a rule holds for, or could reach into, is not renamed at all |
//! | copy (`SITE CPFR/CPTO`) | `download` at the source, `copy` at the target; `overwrite` if it replaces a file |
//! | `SITE CHMOD`, `MFMT` | `chmod`, `mtime` |
//!
//! Looking at one entry (`SIZE`, `MDTM`, `MLST`, `CWD`) is always allowed. A refusal is
//! [`StorageError::Denied`] with the permission (a 550 reply that names it, and an audit line
//! through [`Audited`](crate::Audited)). Listings are the exception: a folder without `list`
//! lists as empty, as vsftpd and Pure-FTPd list an unreadable upload folder, because clients
//! that upload a folder tree (lftp's `mirror -R`, FileZilla) list the target first and stop
//! at a refusal. Nothing in it is shown either way.
//!
//! A hidden name is left out of listings; a path through one is `NotFound` for reading and
//! `BadName` for creating, so that it cannot be seen, opened or made.
//!
//! # Quota
//!
//! [`Usage`] is one account's bytes and files, shared by all of its sessions in this process
//! (a fleet's instances each count their own: the quota holds per instance). It starts from a
//! scan of the home ([`scan_usage`], run by the runtime in the background at the account's
//! first login; until it ends, only the changes made since count) and is kept current by every
//! change through [`Policed`] (the changes that replace or remove a file take the account's
//! lock in [`Usage`] while they measure, act and count, so that two sessions never credit
//! the same old file twice): an upload reserves its bytes as they arrive and fails with
//! [`StorageError::QuotaExceeded`] at the write that would pass the quota (the upload is then
//! discarded and any old file kept); a replaced file's bytes are credited from the start;
//! deletes, and files replaced by a rename, give their space back; copies are checked before
//! they start; a write at an offset past the end counts the file's new length at once.
//! Folders do not count as files. Symlinks that stay inside the home are followed by the
//! disk tree and so are counted (and ruled) where they lead and where they are: an
//! administrator's link inside a home is trusted.
//!
//! # Copying folders
//!
//! [`Policed::copy`] of a folder copies it with everything in it (like `cp -r`) into a target
//! that must not exist and must not be inside the source, after counting it: past
//! [`COPY_MAX_ENTRIES`] entries or [`COPY_MAX_BYTES`] bytes it is refused with
//! [`StorageError::TooMany`] before anything is written. Each file is copied whole or not at
//! all; if a copy fails midway (a full quota, a storage error), what was copied so far stays,
//! and the error is the reply.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use ferry_core::{Permission, glob_match};
use futures_io::AsyncWrite;
use serde::{Deserialize, Serialize};

use crate::net::Cidr;
use crate::{
    Capabilities, EntryBatch, Error, FileKind, Lister, Metadata, Result, Storage, StorageError,
    UnixTime, Upload, VirtualPath, WriteMode, finished,
};

/// The most entries a folder copy may hold (files and folders, the folder itself not counted).
pub const COPY_MAX_ENTRIES: usize = 10_000;

/// The most bytes a folder copy may hold.
pub const COPY_MAX_BYTES: u64 = 10 << 30;

/// The most rules and patterns of each kind a policy may hold (a typo's cost stays small).
const MAX_PATTERNS: usize = 256;

/// A set of [`Permission`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perms(u16);

impl Perms {
    /// Every permission.
    pub const ALL: Self = Self((1 << Permission::ALL.len()) - 1);
    /// None.
    pub const NONE: Self = Self(0);

    fn bit(p: Permission) -> u16 {
        let i = Permission::ALL.iter().position(|&q| q == p).unwrap_or(0);
        1 << i
    }

    /// Whether `p` is in the set.
    #[must_use]
    pub fn has(self, p: Permission) -> bool {
        self.0 & Self::bit(p) != 0
    }

    /// The set with `p` added.
    #[must_use]
    pub fn with(self, p: Permission) -> Self {
        Self(self.0 | Self::bit(p))
    }

    /// The permissions in the set, in [`Permission::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |&p| self.has(p))
    }

    /// Parses names (as [`Permission::as_str`] gives them; `all` for every one).
    ///
    /// # Errors
    /// The first name that is not a permission, with the list of those that are.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut set = Self::NONE;
        for name in names {
            let name = name.trim();
            if name == "all" {
                set = Self::ALL;
                continue;
            }
            let p = Permission::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown permission {name:?}: use all or any of {}",
                    known.join(", ")
                )
            })?;
            set = set.with(p);
        }
        Ok(set)
    }
}

impl Default for Perms {
    fn default() -> Self {
        Self::ALL
    }
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ALL {
            return f.write_str("all");
        }
        if *self == Self::NONE {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.iter().map(Permission::as_str).collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Perms({self})")
    }
}

impl Serialize for Perms {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let names: Vec<&str> = self.iter().map(Permission::as_str).collect();
        names.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Perms {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        Self::parse(names.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

/// A number of bytes, written `10 GiB`, `500MB`, `4096` (also a bare TOML integer).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl fmt::Debug for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Size({self})")
    }
}

const UNITS: [(&str, u64); 9] = [
    ("tib", 1 << 40),
    ("gib", 1 << 30),
    ("mib", 1 << 20),
    ("kib", 1 << 10),
    ("tb", 1_000_000_000_000),
    ("gb", 1_000_000_000),
    ("mb", 1_000_000),
    ("kb", 1_000),
    ("b", 1),
];

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not a size: write a number of bytes, or one with B, KB, KiB, MB, MiB, GB, GiB, TB or TiB"
            )
        };
        let t = text.trim().to_ascii_lowercase();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let (number, unit) = t.split_at(digits);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let unit = unit.trim();
        let scale = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|&(_, s)| s)
                .ok_or_else(bad)?
        };
        number.checked_mul(scale).map(Size).ok_or_else(bad)
    }
}

impl fmt::Display for Size {
    /// The largest binary unit that divides it exactly (`10 GiB`), else bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, scale) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= scale && self.0.is_multiple_of(scale) {
                return write!(f, "{} {unit}", self.0 / scale);
            }
        }
        write!(f, "{} B", self.0)
    }
}

impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size written as a TOML string or integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeIn {
    Number(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match SizeIn::deserialize(d)? {
            SizeIn::Number(n) => Ok(Self(n)),
            SizeIn::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A rate in bytes per second, written `10 MiB/s` (or as a [`Size`]: per second is implied).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate(pub u64);

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self})")
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let t = t.strip_suffix("/s").unwrap_or(t);
        match t.parse::<Size>() {
            Ok(Size(0)) => Err(format!("{text:?}: a rate must be above 0")),
            Ok(Size(n)) => Ok(Self(n)),
            Err(_) => Err(format!(
                "{text:?} is not a rate: write e.g. 10MiB/s, 500KB/s or a number of bytes per second"
            )),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", Size(self.0))
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match SizeIn::deserialize(d)? {
            SizeIn::Number(0) => Err(serde::de::Error::custom("a rate must be above 0")),
            SizeIn::Number(n) => Ok(Self(n)),
            SizeIn::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A pattern of paths (see the module docs): `/incoming`, `/public/**`, `/*/private`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPattern {
    text: String,
}

impl PathPattern {
    /// Parses a pattern.
    ///
    /// # Errors
    /// Not absolute, with an empty, `.` or `..` segment, or with a backslash (a separator in
    /// FTP paths, so such a pattern could never match).
    pub fn new(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("folder path {text:?} must start with /"));
        }
        if text.len() > 1024 {
            return Err("folder path longer than 1024 bytes".into());
        }
        if text.contains('\\') {
            return Err(format!(
                "folder path {text:?}: write / between names, not \\"
            ));
        }
        let trimmed = text.trim_end_matches('/');
        if trimmed
            .split('/')
            .skip(1)
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(format!(
                "folder path {text:?} has an empty, . or .. segment"
            ));
        }
        let text = if trimmed.is_empty() { "/" } else { trimmed };
        Ok(Self {
            text: text.to_owned(),
        })
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pattern as settings show it (the same as [`PathPattern::as_str`]).
    #[must_use]
    pub fn shown(&self) -> &str {
        &self.text
    }

    fn segments(&self) -> Vec<&str> {
        self.text.split('/').filter(|s| !s.is_empty()).collect()
    }

    /// Whether the rule covers the folder `path`: the pattern matches it or a folder above
    /// it (a rule holds for everything below the folders it names).
    #[must_use]
    pub fn matches(&self, path: &VirtualPath) -> bool {
        let segs: Vec<&str> = path.segments().collect();
        let (covers, _) = segments_match(&self.segments(), &segs);
        covers
    }

    /// Whether the rule could cover `path` or a folder somewhere below it (so that moving
    /// `path` elsewhere would take something out of the rule).
    #[must_use]
    pub fn may_cover_beneath(&self, path: &VirtualPath) -> bool {
        let segs: Vec<&str> = path.segments().collect();
        let (covers, reaches) = segments_match(&self.segments(), &segs);
        covers || reaches
    }
}

/// Matches path segments against pattern segments (`**`: any number of segments) by dynamic
/// programming: time is the product of the two lengths, whatever the pattern. Returns
/// whether the whole pattern matches the path or a prefix of it (a folder above it), and
/// whether a part of the pattern matches the whole path (so that the rest could match
/// something below it).
fn segments_match(pat: &[&str], segs: &[&str]) -> (bool, bool) {
    // ok[j]: the pattern so far matches the first j segments.
    let mut ok = vec![false; segs.len() + 1];
    ok[0] = true;
    let mut reaches = segs.is_empty();
    for p in pat {
        let mut next = vec![false; segs.len() + 1];
        if *p == "**" {
            let mut any = false;
            for j in 0..=segs.len() {
                any |= ok[j];
                next[j] = any;
            }
        } else {
            for j in 1..=segs.len() {
                next[j] = ok[j - 1] && glob_match(p, segs[j - 1]);
            }
        }
        ok = next;
        reaches |= ok[segs.len()];
    }
    (ok.iter().any(|&b| b), reaches)
}

impl Serialize for PathPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for PathPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A hidden name pattern (`*` and `?` within one name; no `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct NamePattern(String);

impl NamePattern {
    /// Parses a name pattern.
    ///
    /// # Errors
    /// Empty, longer than 255 bytes, or with a `/`.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > 255 || text.contains(['/', '\\']) {
            return Err(format!(
                "hidden name {text:?} must be a name pattern of 1 to 255 bytes without / or \\"
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// Whether `name` matches.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        glob_match(&self.0, name)
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NamePattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// The permissions of the paths a pattern matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderRule {
    /// Which paths.
    pub path: PathPattern,
    /// What the account may do there.
    pub permissions: Perms,
}

/// One account's policy (see the module docs). The default is no limit at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Most bytes in the home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_size: Option<Size>,
    /// Most files in the home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_files: Option<u64>,
    /// Upload rate of all the account's sessions together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_up: Option<Rate>,
    /// Download rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_down: Option<Rate>,
    /// Most logged-in sessions at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    /// If not empty, logins only from these networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_from: Vec<Cidr>,
    /// Never logins from these networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_from: Vec<Cidr>,
    /// Names never listed, opened or made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<NamePattern>,
    /// What the account may do where no folder rule matches (default: everything).
    #[serde(default, skip_serializing_if = "is_all")]
    pub permissions: Perms,
    /// Per-folder overrides; the first that matches wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<FolderRule>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_all(p: &Perms) -> bool {
    *p == Perms::ALL
}

impl Policy {
    /// Whether this is the default policy (no limit at all).
    #[must_use]
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the bounds that serde cannot: how many patterns there are.
    ///
    /// # Errors
    /// What is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.folders.len() > MAX_PATTERNS
            || self.hidden.len() > MAX_PATTERNS
            || self.allow_from.len() > MAX_PATTERNS
            || self.deny_from.len() > MAX_PATTERNS
        {
            return Err(format!(
                "a policy may hold at most {MAX_PATTERNS} folders, hidden names and networks of each kind"
            ));
        }
        if self.max_sessions == Some(0) {
            return Err("max_sessions must be at least 1 (remove the account to refuse it)".into());
        }
        Ok(())
    }

    /// Parses a policy from its TOML text (as stored by an account database).
    ///
    /// # Errors
    /// Not valid TOML, or not a valid policy.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let p: Self = toml::from_str(text).map_err(|e| e.message().trim_end().to_owned())?;
        p.validate()?;
        Ok(p)
    }

    /// The policy as TOML text (empty for the default).
    #[must_use]
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Whether a login from `ip` is allowed.
    #[must_use]
    pub fn allows_address(&self, ip: IpAddr) -> bool {
        !Cidr::any_contains(&self.deny_from, ip)
            && (self.allow_from.is_empty() || Cidr::any_contains(&self.allow_from, ip))
    }

    /// The permissions at `path`.
    #[must_use]
    pub fn permissions_at(&self, path: &VirtualPath) -> Perms {
        self.folders
            .iter()
            .find(|r| r.path.matches(path))
            .map_or(self.permissions, |r| r.permissions)
    }

    /// Whether `p` is allowed at `path`.
    #[must_use]
    pub fn allows(&self, path: &VirtualPath, p: Permission) -> bool {
        self.permissions_at(path).has(p)
    }

    /// Whether a name is hidden.
    #[must_use]
    pub fn hides(&self, name: &str) -> bool {
        self.hidden.iter().any(|h| h.matches(name))
    }

    /// Whether a path goes through a hidden name.
    #[must_use]
    pub fn hides_path(&self, path: &VirtualPath) -> bool {
        !self.hidden.is_empty() && path.segments().any(|s| self.hides(s))
    }

    /// Whether the storage side has anything to enforce (permissions, hidden names or a
    /// quota); if not, [`Policed`] passes every call straight through.
    #[must_use]
    pub fn restricts_storage(&self) -> bool {
        self.permissions != Perms::ALL
            || !self.folders.is_empty()
            || !self.hidden.is_empty()
            || self.quota_size.is_some()
            || self.quota_files.is_some()
    }
}

/// One account's bytes and files, shared by its sessions (see the module docs).
#[derive(Debug, Default)]
pub struct Usage {
    bytes: AtomicU64,
    files: AtomicU64,
    scanned: AtomicBool,
    /// Held by every change that measures what it replaces and then counts it (a commit, a
    /// delete, a rename, a copy), so that two sessions of the account cannot both credit the
    /// same old file.
    lock: async_lock::Mutex<()>,
}

impl Usage {
    /// Nothing counted yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes and files counted now.
    #[must_use]
    pub fn get(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.files.load(Ordering::Relaxed),
        )
    }

    /// Whether the scan of the home has been added.
    #[must_use]
    pub fn is_scanned(&self) -> bool {
        self.scanned.load(Ordering::Relaxed)
    }

    /// Adds what a scan of the home found (to the changes counted since it began).
    pub fn add_scan(&self, bytes: u64, files: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.files.fetch_add(files, Ordering::Relaxed);
        self.scanned.store(true, Ordering::Relaxed);
    }

    /// Adds `n` to `counter` unless that would pass `limit`.
    fn try_add(counter: &AtomicU64, n: u64, limit: Option<u64>) -> bool {
        if n == 0 {
            return true;
        }
        counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                let next = v.saturating_add(n);
                match limit {
                    Some(l) if next > l => None,
                    _ => Some(next),
                }
            })
            .is_ok()
    }

    fn sub(counter: &AtomicU64, n: u64) {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(n))
        });
    }
}

/// The bytes and files under the root of `tree` (following its listings; symlinks that
/// listings show as links are not counted). A folder below the root that cannot be listed
/// (removed meanwhile, unreadable) is left out, so that one folder cannot switch the quota
/// off.
///
/// # Errors
/// The root cannot be listed.
pub async fn scan_usage<S: Storage>(tree: &S) -> Result<(u64, u64)> {
    let (mut bytes, mut files) = (0u64, 0u64);
    let mut folders = VecDeque::from([VirtualPath::root()]);
    let mut batch = EntryBatch::new();
    while let Some(dir) = folders.pop_front() {
        let mut lister = match tree.list(&dir).await {
            Ok(l) => l,
            Err(e) if dir.is_root() => return Err(e),
            Err(_) => continue,
        };
        loop {
            batch.clear();
            match lister.next_batch(&mut batch).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) if dir.is_root() => return Err(e),
                Err(_) => break,
            }
            for e in batch.iter() {
                match e.meta.kind {
                    FileKind::Dir => folders.extend(child(&dir, e.name)),
                    FileKind::File => {
                        bytes = bytes.saturating_add(e.meta.size);
                        files += 1;
                    }
                    FileKind::Symlink => {}
                }
            }
        }
    }
    Ok((bytes, files))
}

/// `dir/name`, for a name from a listing; `None` for one no FTP path can name (a backslash
/// is a separator in FTP paths).
fn child(dir: &VirtualPath, name: &str) -> Option<VirtualPath> {
    if name.contains('\\') {
        return None;
    }
    dir.join(name).ok()
}

/// `rel` (a path from the root of a walk) beneath `base`.
fn under(base: &VirtualPath, rel: &VirtualPath) -> Result<VirtualPath> {
    base.join(rel.relative())
        .map_err(|_| Error::new(StorageError::BadName))
}

/// The storage side of a [`Policy`] around any tree: permissions, hidden names, the quota,
/// and recursive folder copies (see the module docs). Put it inside
/// [`Audited`](crate::Audited), so that refusals are recorded.
#[derive(Debug, Clone)]
pub struct Policed<S> {
    inner: S,
    policy: Arc<Policy>,
    usage: Arc<Usage>,
}

fn denied<T>(p: Permission) -> Result<T> {
    Err(Error::new(StorageError::Denied(p)))
}

fn quota_exceeded() -> Error {
    Error::new(StorageError::QuotaExceeded)
}

impl<S: Storage + Clone> Policed<S> {
    /// `inner` under `policy`, counting into `usage` (the account's, shared by its sessions).
    #[must_use]
    pub fn new(inner: S, policy: Arc<Policy>, usage: Arc<Usage>) -> Self {
        Self {
            inner,
            policy,
            usage,
        }
    }

    /// The tree inside.
    #[must_use]
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Whether anything is enforced (otherwise every call goes straight through).
    fn active(&self) -> bool {
        self.policy.restricts_storage()
    }

    fn counts(&self) -> bool {
        self.policy.quota_size.is_some() || self.policy.quota_files.is_some()
    }

    /// Refuses `p` on the entry `path` unless the folder that holds it allows it (for
    /// [`Permission::List`], the folder `path` itself).
    fn need(&self, path: &VirtualPath, p: Permission) -> Result<()> {
        let folder = if p == Permission::List {
            path.clone()
        } else {
            path.parent()
        };
        if self.policy.allows(&folder, p) {
            Ok(())
        } else {
            denied(p)
        }
    }

    /// `NotFound` for a path through a hidden name (reading it).
    fn visible(&self, path: &VirtualPath) -> Result<()> {
        if self.policy.hides_path(path) {
            return Err(Error::new(StorageError::NotFound));
        }
        Ok(())
    }

    /// `BadName` for a path through a hidden name (making it).
    fn makeable(&self, path: &VirtualPath) -> Result<()> {
        if self.policy.hides_path(path) {
            return Err(Error::new(StorageError::BadName));
        }
        Ok(())
    }

    /// The size of the file at `path`, if one is there.
    async fn file_size(&self, path: &VirtualPath) -> Option<u64> {
        file_size(&self.inner, path).await
    }

    /// The file at `to` that a rename or copy would replace: `overwrite` is needed for it;
    /// returns its size.
    async fn replaced(&self, to: &VirtualPath) -> Result<Option<u64>> {
        let old = self.file_size(to).await;
        if old.is_some() {
            self.need(to, Permission::Overwrite)?;
        }
        Ok(old)
    }

    /// Reserves `bytes` and `files` within the quota.
    fn reserve(&self, bytes: u64, files: u64) -> Result<()> {
        let limit_bytes = self.policy.quota_size.map(|s| s.0);
        if !Usage::try_add(&self.usage.bytes, bytes, limit_bytes) {
            return Err(quota_exceeded());
        }
        if !Usage::try_add(&self.usage.files, files, self.policy.quota_files) {
            Usage::sub(&self.usage.bytes, bytes);
            return Err(quota_exceeded());
        }
        Ok(())
    }

    fn release(&self, bytes: u64, files: u64) {
        Usage::sub(&self.usage.bytes, bytes);
        Usage::sub(&self.usage.files, files);
    }

    /// Refuses to rename the folder `from` if a folder rule covers it or anything below it,
    /// or would cover what lands at `to`: a rename must not carry files out of (or into)
    /// the reach of a rule.
    async fn check_folder_rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()> {
        if self.policy.folders.is_empty() {
            return Ok(());
        }
        let is_dir = matches!(self.inner.metadata(from).await, Ok(m) if m.kind == FileKind::Dir);
        let ruled = |p: &VirtualPath| {
            self.policy
                .folders
                .iter()
                .any(|r| r.path.may_cover_beneath(p))
        };
        if is_dir && (ruled(from) || ruled(to)) {
            return denied(Permission::Rename);
        }
        Ok(())
    }

    async fn copy_file(&self, from: &VirtualPath, to: &VirtualPath) -> Result<u64> {
        self.need(from, Permission::Download)?;
        self.need(to, Permission::Copy)?;
        if !self.counts() {
            self.replaced(to).await?;
            return self.inner.copy(from, to).await;
        }
        let _counting = self.usage.lock.lock().await;
        let old = self.replaced(to).await?;
        let size = self.file_size(from).await.unwrap_or(0);
        let (bytes, files) = (
            size.saturating_sub(old.unwrap_or(0)),
            u64::from(old.is_none()),
        );
        self.reserve(bytes, files)?;
        match self.inner.copy(from, to).await {
            Ok(n) => {
                // What was copied is what counts (the source may have changed meanwhile).
                let now = n.saturating_sub(old.unwrap_or(0));
                if now > bytes {
                    self.usage.bytes.fetch_add(now - bytes, Ordering::Relaxed);
                } else {
                    Usage::sub(&self.usage.bytes, bytes - now);
                }
                if let Some(old) = old
                    && old > n
                {
                    Usage::sub(&self.usage.bytes, old - n);
                }
                Ok(n)
            }
            Err(e) => {
                self.release(bytes, files);
                Err(e)
            }
        }
    }

    /// Copies the folder `from` to `to` with everything in it (see the module docs).
    async fn copy_tree(&self, from: &VirtualPath, to: &VirtualPath) -> Result<u64> {
        if to.starts_with(from) {
            return Err(Error::new(StorageError::BadName));
        }
        match self.inner.metadata(to).await {
            Ok(_) => return Err(Error::new(StorageError::AlreadyExists)),
            Err(e) if e.kind() == StorageError::NotFound => {}
            Err(e) => return Err(e),
        }
        self.need(to, Permission::Copy)?;
        // Count first, so that a copy past the limits writes nothing.
        let mut entries: Vec<(VirtualPath, FileKind, u64)> = Vec::new();
        let (mut total, mut files) = (0u64, 0u64);
        let mut folders = VecDeque::from([VirtualPath::root()]);
        let mut batch = EntryBatch::new();
        while let Some(rel) = folders.pop_front() {
            let dir = under(from, &rel)?;
            self.need(&dir, Permission::List)?;
            let mut lister = self.inner.list(&dir).await?;
            loop {
                batch.clear();
                if !lister.next_batch(&mut batch).await? {
                    break;
                }
                for e in batch.iter() {
                    if self.policy.hides(e.name) || e.meta.kind == FileKind::Symlink {
                        continue;
                    }
                    let Some(r) = child(&rel, e.name) else {
                        continue;
                    };
                    if e.meta.kind == FileKind::Dir {
                        folders.push_back(r.clone());
                    } else {
                        total = total.saturating_add(e.meta.size);
                        files += 1;
                    }
                    entries.push((r, e.meta.kind, e.meta.size));
                    if entries.len() > COPY_MAX_ENTRIES || total > COPY_MAX_BYTES {
                        return Err(Error::new(StorageError::TooMany));
                    }
                }
            }
        }
        let (used_bytes, used_files) = self.usage.get();
        let over_bytes = self
            .policy
            .quota_size
            .is_some_and(|l| used_bytes.saturating_add(total) > l.0);
        let over_files = self
            .policy
            .quota_files
            .is_some_and(|l| used_files.saturating_add(files) > l);
        if over_bytes || over_files {
            return Err(quota_exceeded());
        }
        self.make_dir(to).await?;
        let mut copied = 0u64;
        for (rel, kind, _) in &entries {
            let (src, dst) = (under(from, rel)?, under(to, rel)?);
            if *kind == FileKind::Dir {
                self.make_dir(&dst).await?;
            } else {
                copied += self.copy_file(&src, &dst).await?;
            }
        }
        Ok(copied)
    }

    /// The permissions an upload of `mode` needs, given the file `old` there now.
    fn need_write(&self, path: &VirtualPath, mode: WriteMode, old: Option<u64>) -> Result<()> {
        match mode {
            WriteMode::Replace | WriteMode::CreateNew => {
                self.need(path, Permission::Upload)?;
                if old.is_some() {
                    self.need(path, Permission::Overwrite)?;
                }
            }
            WriteMode::Append | WriteMode::At(_) => {
                self.need(path, Permission::Append)?;
                // An append may make the file; a write at an offset inside it replaces
                // what was there.
                match (mode, old) {
                    (_, None) => self.need(path, Permission::Upload)?,
                    (WriteMode::At(n), Some(size)) if n < size => {
                        self.need(path, Permission::Overwrite)?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Opens an upload whose bytes count against the quota.
    async fn open_counted(&self, path: &VirtualPath, mode: WriteMode) -> Result<PolicedUpload<S>> {
        let _counting = self.usage.lock.lock().await;
        let old = self.file_size(path).await;
        self.need_write(path, mode, old)?;
        // A new file is counted before it is opened (an append makes it at once); a write
        // at an offset cuts or extends the file to that offset at once.
        let new_file = u64::from(old.is_none());
        let size = old.unwrap_or(0);
        let grows = match mode {
            WriteMode::At(n) => n.saturating_sub(size),
            _ => 0,
        };
        self.reserve(grows, new_file)?;
        let upload = match self.inner.open_write(path, mode).await {
            Ok(u) => u,
            Err(e) => {
                self.release(grows, new_file);
                return Err(e);
            }
        };
        let in_place = matches!(mode, WriteMode::Append | WriteMode::At(_));
        if !in_place && upload.replaces_existing() && old.is_none() {
            // A file appeared since it was measured: replacing it needs `overwrite`.
            if let Err(e) = self.need(path, Permission::Overwrite) {
                upload.abort().await;
                self.release(0, new_file);
                return Err(e);
            }
        }
        if let WriteMode::At(n) = mode
            && n < size
        {
            Usage::sub(&self.usage.bytes, size - n);
        }
        Ok(PolicedUpload {
            inner: Some(upload),
            quota: Some(UploadQuota {
                tree: self.inner.clone(),
                path: path.clone(),
                usage: self.usage.clone(),
                limit: self.policy.quota_size.map(|s| s.0),
                credit: if in_place { 0 } else { size },
                written: 0,
                charged: 0,
                files: new_file,
                in_place,
            }),
        })
    }
}

/// The size of the file at `path` in `tree`, if one is there.
async fn file_size<S: Storage>(tree: &S, path: &VirtualPath) -> Option<u64> {
    match tree.metadata(path).await {
        Ok(m) if m.kind == FileKind::File => Some(m.size),
        _ => None,
    }
}

impl<S: Storage + Clone> Storage for Policed<S> {
    type Reader = S::Reader;
    type Upload = PolicedUpload<S>;
    type Lister = PolicedLister<S::Lister>;

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata> {
        self.visible(path)?;
        self.inner.metadata(path).await
    }

    async fn list(&self, path: &VirtualPath) -> Result<Self::Lister> {
        self.visible(path)?;
        if self.need(path, Permission::List).is_err() {
            return Ok(PolicedLister::empty());
        }
        Ok(PolicedLister::new(
            self.inner.list(path).await?,
            &self.policy,
        ))
    }

    async fn list_names(&self, path: &VirtualPath) -> Result<Self::Lister> {
        self.visible(path)?;
        if self.need(path, Permission::List).is_err() {
            return Ok(PolicedLister::empty());
        }
        Ok(PolicedLister::new(
            self.inner.list_names(path).await?,
            &self.policy,
        ))
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<(S::Reader, Metadata)> {
        self.visible(path)?;
        self.need(path, Permission::Download)?;
        self.inner.open_read(path, offset).await
    }

    async fn open_write(&self, path: &VirtualPath, mode: WriteMode) -> Result<Self::Upload> {
        if !self.active() {
            return Ok(PolicedUpload::plain(
                self.inner.open_write(path, mode).await?,
            ));
        }
        self.makeable(path)?;
        if self.counts() {
            return self.open_counted(path, mode).await;
        }
        let old = self.file_size(path).await;
        self.need_write(path, mode, old)?;
        let upload = self.inner.open_write(path, mode).await?;
        let in_place = matches!(mode, WriteMode::Append | WriteMode::At(_));
        if !in_place
            && upload.replaces_existing()
            && self.need(path, Permission::Overwrite).is_err()
        {
            upload.abort().await;
            return denied(Permission::Overwrite);
        }
        Ok(PolicedUpload::plain(upload))
    }

    async fn make_dir(&self, path: &VirtualPath) -> Result<()> {
        if self.active() {
            self.makeable(path)?;
            self.need(path, Permission::Mkdir)?;
        }
        self.inner.make_dir(path).await
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<()> {
        if self.active() {
            self.visible(path)?;
            self.need(path, Permission::Rmdir)?;
        }
        self.inner.remove_dir(path).await
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<()> {
        if !self.active() {
            return self.inner.remove_file(path).await;
        }
        self.visible(path)?;
        self.need(path, Permission::Delete)?;
        if !self.counts() {
            return self.inner.remove_file(path).await;
        }
        let _counting = self.usage.lock.lock().await;
        let size = self.file_size(path).await;
        self.inner.remove_file(path).await?;
        if let Some(size) = size {
            self.release(size, 1);
        }
        Ok(())
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()> {
        if !self.active() {
            return self.inner.rename(from, to).await;
        }
        self.visible(from)?;
        self.makeable(to)?;
        self.need(from, Permission::Rename)?;
        self.need(to, Permission::Rename)?;
        if from == to {
            return self.inner.rename(from, to).await;
        }
        self.check_folder_rename(from, to).await?;
        if !self.counts() {
            self.replaced(to).await?;
            return self.inner.rename(from, to).await;
        }
        let _counting = self.usage.lock.lock().await;
        let old = self.replaced(to).await?;
        self.inner.rename(from, to).await?;
        if let Some(size) = old {
            self.release(size, 1);
        }
        Ok(())
    }

    async fn copy(&self, from: &VirtualPath, to: &VirtualPath) -> Result<u64> {
        self.visible(from)?;
        self.makeable(to)?;
        match self.inner.metadata(from).await {
            Ok(m) if m.kind == FileKind::Dir => self.copy_tree(from, to).await,
            _ if !self.active() => self.inner.copy(from, to).await,
            _ => self.copy_file(from, to).await,
        }
    }

    async fn set_modified(&self, path: &VirtualPath, time: UnixTime) -> Result<()> {
        if self.active() {
            self.visible(path)?;
            self.need(path, Permission::Mtime)?;
        }
        self.inner.set_modified(path, time).await
    }

    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<()> {
        if self.active() {
            self.visible(path)?;
            self.need(path, Permission::Chmod)?;
        }
        self.inner.set_mode(path, mode).await
    }
}

/// The quota's side of one upload.
#[derive(Debug)]
struct UploadQuota<S> {
    /// The tree and path, to measure at the commit what the upload really replaces.
    tree: S,
    path: VirtualPath,
    usage: Arc<Usage>,
    limit: Option<u64>,
    /// Bytes of the old file that this upload's bytes replace, as measured at the opening
    /// (what it may use before it passes the quota; settled at the commit).
    credit: u64,
    written: u64,
    /// Bytes reserved in `usage` so far.
    charged: u64,
    /// Files reserved (1 for a file that did not exist at the opening).
    files: u64,
    /// An append or a write at an offset: what it wrote stays even if it is abandoned.
    in_place: bool,
}

impl<S: Storage> UploadQuota<S> {
    fn charge_for(&self, written: u64) -> u64 {
        written.saturating_sub(self.credit)
    }

    /// Reserves what `more` bytes would add; `false` if that passes the quota.
    fn reserve(&mut self, more: u64) -> bool {
        let want = self.charge_for(self.written.saturating_add(more));
        let add = want.saturating_sub(self.charged);
        if !Usage::try_add(&self.usage.bytes, add, self.limit) {
            return false;
        }
        self.charged += add;
        true
    }

    /// Gives back what was reserved beyond what was written.
    fn settle(&mut self) {
        let want = self.charge_for(self.written);
        if self.charged > want {
            Usage::sub(&self.usage.bytes, self.charged - want);
            self.charged = want;
        }
    }

    /// The upload replaced `old` (measured just before its commit, under the account's
    /// lock): the count becomes exactly what it wrote less what it replaced.
    fn committed(&mut self, old: Option<u64>) {
        self.settle();
        let counted = self.charged;
        let net = self.written.saturating_sub(old.unwrap_or(0));
        if net > counted {
            self.usage.bytes.fetch_add(net - counted, Ordering::Relaxed);
        } else {
            Usage::sub(&self.usage.bytes, counted - net);
        }
        let freed = old.unwrap_or(0).saturating_sub(self.written);
        Usage::sub(&self.usage.bytes, freed);
        match (old.is_some(), self.files) {
            (true, 1) => Usage::sub(&self.usage.files, 1),
            (false, 0) => {
                self.usage.files.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        self.files = 0;
        self.charged = 0;
    }

    /// The upload is gone: everything it reserved goes back (but for an append, whose
    /// bytes stay in the file).
    fn discarded(&mut self) {
        self.settle();
        if self.in_place {
            self.files = 0;
            self.charged = 0;
            return;
        }
        Usage::sub(&self.usage.bytes, self.charged);
        Usage::sub(&self.usage.files, self.files);
        self.charged = 0;
        self.files = 0;
    }
}

/// An upload through [`Policed`]: counts its bytes against the quota as they arrive.
pub struct PolicedUpload<S: Storage> {
    /// `None` once committed or aborted.
    inner: Option<S::Upload>,
    quota: Option<UploadQuota<S>>,
}

impl<S: Storage> fmt::Debug for PolicedUpload<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicedUpload")
            .field("counted", &self.quota.is_some())
            .finish_non_exhaustive()
    }
}

// Nothing in it is pinned structurally: the inner upload is `Unpin`, the tree only a handle.
impl<S: Storage> Unpin for PolicedUpload<S> {}

impl<S: Storage> PolicedUpload<S> {
    fn plain(inner: S::Upload) -> Self {
        Self {
            inner: Some(inner),
            quota: None,
        }
    }
}

impl<S: Storage> AsyncWrite for PolicedUpload<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(finished()));
        };
        if let Some(q) = &mut this.quota
            && !q.reserve(buf.len() as u64)
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::QuotaExceeded,
                "the account's quota would be passed",
            )));
        }
        let r = Pin::new(inner).poll_write(cx, buf);
        if let Some(q) = &mut this.quota {
            if let Poll::Ready(Ok(n)) = r {
                q.written += n as u64;
            }
            q.settle();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        crate::poll_flush_inner(self.inner.as_mut(), cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        crate::poll_close_inner(self.inner.as_mut(), cx)
    }
}

impl<S: Storage> Upload for PolicedUpload<S> {
    async fn commit(mut self) -> Result<u64> {
        let Some(inner) = self.inner.take() else {
            return Err(Error::with_source(StorageError::Other, finished()));
        };
        let Some(q) = &mut self.quota else {
            return inner.commit().await;
        };
        if q.in_place {
            let r = inner.commit().await;
            q.discarded();
            return r;
        }
        let usage = q.usage.clone();
        let _counting = usage.lock.lock().await;
        let old = file_size(&q.tree, &q.path).await;
        let r = inner.commit().await;
        match &r {
            Ok(_) => q.committed(old),
            Err(_) => q.discarded(),
        }
        r
    }

    async fn abort(mut self) {
        if let Some(inner) = self.inner.take() {
            inner.abort().await;
        }
        if let Some(q) = &mut self.quota {
            q.discarded();
        }
    }

    fn replaces_existing(&self) -> bool {
        self.inner.as_ref().is_some_and(Upload::replaces_existing)
    }
}

impl<S: Storage> Drop for PolicedUpload<S> {
    fn drop(&mut self) {
        if let Some(q) = &mut self.quota {
            // Dropped before its commit, or while committing: what it reserved goes back
            // (a commit that completed has already settled, leaving nothing).
            q.discarded();
        }
    }
}

/// A listing through [`Policed`]: hidden names left out; empty where `list` is not allowed.
#[derive(Debug)]
pub struct PolicedLister<L> {
    /// `None`: a folder the account may not list.
    inner: Option<L>,
    hidden: Vec<NamePattern>,
    scratch: EntryBatch,
}

impl<L> PolicedLister<L> {
    fn new(inner: L, policy: &Policy) -> Self {
        Self {
            inner: Some(inner),
            hidden: policy.hidden.clone(),
            scratch: EntryBatch::new(),
        }
    }

    fn empty() -> Self {
        Self {
            inner: None,
            hidden: Vec::new(),
            scratch: EntryBatch::new(),
        }
    }
}

impl<L: Lister> Lister for PolicedLister<L> {
    async fn next_batch(&mut self, batch: &mut EntryBatch) -> Result<bool> {
        let Some(inner) = &mut self.inner else {
            return Ok(false);
        };
        if self.hidden.is_empty() {
            return inner.next_batch(batch).await;
        }
        loop {
            self.scratch.clear();
            if !inner.next_batch(&mut self.scratch).await? {
                return Ok(false);
            }
            let before = batch.len();
            for e in self.scratch.iter() {
                if !self.hidden.iter().any(|h| h.matches(e.name)) {
                    batch.push(e.name, e.meta);
                }
            }
            // A batch of only hidden names: go on to the next, so that `false` still
            // means the end.
            if batch.len() > before {
                return Ok(true);
            }
        }
    }
}
