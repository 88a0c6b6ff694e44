//! `VirtualPath`: what a client typed, turned into a normalised absolute path (the jail's
//! first half).
//!
//! The core never touches a file system. It joins each path argument to the working
//! directory and normalises it *lexically*: the result is absolute, `/`-separated, and has no
//! `.`, `..` or empty segments; `..` at the root stays at the root, so no path the core hands
//! to a backend can name anything above `/`. A backslash counts as a separator (Windows
//! clients send `dir\file`). NUL and other control characters are refused: they have no
//! business in a file name and would let a name split a reply or a log line.
//!
//! The backend then resolves the path *beneath* its root with the kernel's help, so that
//! symlinks on disk cannot lead out either (DESIGN.md, invariant 4).

use core::fmt;

use crate::limits::MAX_PATH;
use crate::text::Text;

/// Why a path argument was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The path holds a NUL or another control character.
    ControlCharacter,
    /// The normalised path would be longer than [`MAX_PATH`].
    TooLong,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ControlCharacter => "path contains a control character",
            Self::TooLong => "path too long",
        })
    }
}

impl core::error::Error for PathError {}

/// An absolute, normalised path inside a user's tree: `/` or `/a/b` (never a trailing `/`).
///
/// Built only by [`VirtualPath::root`] and [`VirtualPath::join`], so every value upholds the
/// invariants above.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VirtualPath(Text<MAX_PATH>);

fn is_separator(c: char) -> bool {
    c == '/' || c == '\\'
}

impl VirtualPath {
    /// The root, `/`.
    #[must_use]
    pub fn root() -> Self {
        let mut t = Text::new();
        // One byte always fits.
        let _ = t.push_str("/");
        Self(t)
    }

    /// Normalises `input` on its own, as if typed in the root directory.
    ///
    /// # Errors
    /// As [`VirtualPath::join`].
    pub fn parse(input: &str) -> Result<Self, PathError> {
        Self::root().join(input)
    }

    /// Joins what a client typed to this directory and normalises the result.
    ///
    /// An `input` that starts with `/` or `\` is taken from the root; otherwise it is relative
    /// to `self`.
    ///
    /// # Errors
    /// [`PathError::ControlCharacter`] if `input` holds a byte below 0x20 or 0x7F;
    /// [`PathError::TooLong`] if the result, or any step towards it, exceeds [`MAX_PATH`].
    pub fn join(&self, input: &str) -> Result<Self, PathError> {
        if input.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(PathError::ControlCharacter);
        }
        let mut out: Text<MAX_PATH> = Text::new();
        if !input.starts_with(is_separator) && !self.is_root() {
            out.push_str(self.as_str())
                .map_err(|_| PathError::TooLong)?;
        }
        for segment in input.split(is_separator) {
            match segment {
                "" | "." => {}
                ".." => {
                    let cut = out.as_str().rfind('/').unwrap_or(0);
                    out.truncate(cut);
                }
                name => {
                    out.push_str("/").map_err(|_| PathError::TooLong)?;
                    out.push_str(name).map_err(|_| PathError::TooLong)?;
                }
            }
        }
        if out.is_empty() {
            return Ok(Self::root());
        }
        Ok(Self(out))
    }

    /// The path as a string: `/` or `/a/b`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The path without its leading `/` (empty for the root): what a backend joins to its own
    /// root directory.
    #[must_use]
    pub fn relative(&self) -> &str {
        &self.as_str()[1..]
    }

    /// Whether this is `/`.
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.as_str().len() == 1
    }

    /// The directory that holds this path; the root's parent is the root.
    #[must_use]
    pub fn parent(&self) -> Self {
        match self.as_str().rfind('/') {
            Some(0) | None => Self::root(),
            Some(cut) => {
                let mut t = self.0.clone();
                t.truncate(cut);
                Self(t)
            }
        }
    }

    /// The last segment, or `None` for the root.
    #[must_use]
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.as_str().rsplit('/').next()
        }
    }

    /// The segments from the root down (none for the root).
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.relative().split('/').filter(|s| !s.is_empty())
    }

    /// Whether `self` is `other` or lies beneath it.
    #[must_use]
    pub fn starts_with(&self, other: &Self) -> bool {
        other.is_root()
            || self.as_str() == other.as_str()
            || (self.as_str().starts_with(other.as_str())
                && self.as_str().as_bytes().get(other.as_str().len()) == Some(&b'/'))
    }
}

impl Default for VirtualPath {
    fn default() -> Self {
        Self::root()
    }
}

impl fmt::Debug for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for VirtualPath {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(base: &str, input: &str) -> Result<VirtualPath, PathError> {
        VirtualPath::parse(base).unwrap().join(input)
    }

    #[test]
    fn known_answers() {
        let cases = [
            ("/", "", "/"),
            ("/", "a", "/a"),
            ("/a", "b", "/a/b"),
            ("/a", "/b", "/b"),
            ("/a/b", "..", "/a"),
            ("/a/b", "../..", "/"),
            ("/a/b", "../../../../etc/passwd", "/etc/passwd"),
            ("/", "..", "/"),
            ("/", "./././.", "/"),
            ("/a", "b//c/", "/a/b/c"),
            ("/a", "b\\c", "/a/b/c"),
            ("/a", "\\windows\\system32", "/windows/system32"),
            ("/a", "..\\..\\x", "/x"),
            ("/", "%2e%2e/x", "/%2e%2e/x"),
            ("/", "...", "/..."),
            ("/", "my file.txt", "/my file.txt"),
            ("/", " lead and trail ", "/ lead and trail "),
            ("/", "ünïcödé/файл", "/ünïcödé/файл"),
            ("/d", "./", "/d"),
        ];
        for (base, input, want) in cases {
            assert_eq!(j(base, input).unwrap().as_str(), want, "{base} + {input}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        for bad in ["a\0b", "a\rb", "a\nb", "\x7f", "x\x1b[31m"] {
            assert_eq!(j("/", bad), Err(PathError::ControlCharacter), "{bad:?}");
        }
    }

    #[test]
    fn too_long_is_refused() {
        let long = "a".repeat(MAX_PATH);
        assert_eq!(j("/", &long), Err(PathError::TooLong));
        let fits = "a".repeat(MAX_PATH - 1);
        assert_eq!(j("/", &fits).unwrap().as_str().len(), MAX_PATH);
    }

    #[test]
    fn parts() {
        let p = VirtualPath::parse("/a/b/c").unwrap();
        assert_eq!(p.parent().as_str(), "/a/b");
        assert_eq!(p.file_name(), Some("c"));
        assert_eq!(p.relative(), "a/b/c");
        assert_eq!(
            p.segments().collect::<heapless::Vec<_, 4>>().as_slice(),
            ["a", "b", "c"]
        );
        let r = VirtualPath::root();
        assert_eq!(r.parent(), r);
        assert_eq!(r.file_name(), None);
        assert_eq!(r.relative(), "");
        assert_eq!(r.segments().count(), 0);
        assert_eq!(VirtualPath::parse("/a").unwrap().parent(), r);
        assert!(p.starts_with(&VirtualPath::parse("/a/b").unwrap()));
        assert!(p.starts_with(&r));
        assert!(
            !VirtualPath::parse("/ab")
                .unwrap()
                .starts_with(&VirtualPath::parse("/a").unwrap())
        );
    }
}
