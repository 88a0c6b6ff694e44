//! Bounded strings: heap-backed with the `alloc` feature, fixed-capacity without it.
//!
//! Both forms enforce the same capacity `N`, so behaviour does not depend on the feature; only
//! where the bytes live does. Without `alloc`, a `Text<N>` holds `N` bytes inline and the core
//! never allocates; with it, a short path costs a few bytes, which keeps idle sessions small.

use core::fmt;

/// The string is longer than the capacity allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityError;

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("string too long")
    }
}

impl core::error::Error for CapacityError {}

/// A UTF-8 string of at most `N` bytes.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text<const N: usize> {
    #[cfg(feature = "alloc")]
    inner: alloc::string::String,
    #[cfg(not(feature = "alloc"))]
    inner: heapless::String<N>,
}

impl<const N: usize> Text<N> {
    /// An empty string.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.inner.as_str()
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the string is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Appends `s`, or fails without changing anything if the result would exceed `N` bytes.
    ///
    /// # Errors
    /// [`CapacityError`] when the result would be longer than `N` bytes.
    pub fn push_str(&mut self, s: &str) -> Result<(), CapacityError> {
        if self.inner.len() + s.len() > N {
            return Err(CapacityError);
        }
        #[cfg(feature = "alloc")]
        self.inner.push_str(s);
        #[cfg(not(feature = "alloc"))]
        self.inner.push_str(s).map_err(|_| CapacityError)?;
        Ok(())
    }

    /// Shortens the string to `len` bytes (`len` must be on a character boundary).
    pub fn truncate(&mut self, len: usize) {
        self.inner.truncate(len);
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.inner.clear();
    }
}

impl<const N: usize> TryFrom<&str> for Text<N> {
    type Error = CapacityError;

    fn try_from(s: &str) -> Result<Self, CapacityError> {
        let mut t = Self::new();
        t.push_str(s)?;
        Ok(t)
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> core::ops::Deref for Text<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> fmt::Write for Text<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s).map_err(|_| fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_enforced_in_both_forms() {
        let mut t = Text::<4>::new();
        t.push_str("ab").unwrap();
        assert_eq!(t.push_str("cde"), Err(CapacityError));
        assert_eq!(t.as_str(), "ab");
        t.push_str("cd").unwrap();
        assert_eq!(&*t, "abcd");
        assert!(Text::<3>::try_from("abcd").is_err());
    }
}
