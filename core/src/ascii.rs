//! `TYPE A` line-end conversion, as resumable pure functions over chunks.
//!
//! On the wire, ASCII mode ends lines with CR LF (RFC 959 §3.1.1.1); Ferry stores files with
//! the server's LF. [`ToNetwork`] adds a CR before each LF that lacks one; [`FromNetwork`]
//! drops the CR of each CR LF and keeps any other CR. Both carry one flag between chunks,
//! so a CR LF split across two reads converts the same as in one.

/// Writes `bytes` into `output` at `*o` and moves `*o` past them, if they all fit; says
/// whether they did.
fn emit(output: &mut [u8], o: &mut usize, bytes: &[u8]) -> bool {
    let Some(dst) = output.get_mut(*o..*o + bytes.len()) else {
        return false;
    };
    dst.copy_from_slice(bytes);
    *o += bytes.len();
    true
}

/// LF to CR LF, for sending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToNetwork {
    after_cr: bool,
}

impl ToNetwork {
    /// A converter at the start of a file.
    #[must_use]
    pub const fn new() -> Self {
        Self { after_cr: false }
    }

    /// Converts as much of `input` as fits in `output`. Returns (bytes of `input` consumed,
    /// bytes written). With an `output` of at least 2 bytes it always makes progress.
    pub fn convert(&mut self, input: &[u8], output: &mut [u8]) -> (usize, usize) {
        let (mut used, mut o) = (0, 0);
        for &b in input {
            let one = [b];
            let bytes: &[u8] = if b == b'\n' && !self.after_cr {
                b"\r\n"
            } else {
                &one
            };
            if !emit(output, &mut o, bytes) {
                break;
            }
            self.after_cr = b == b'\r';
            used += 1;
        }
        (used, o)
    }
}

/// CR LF to LF, for receiving.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FromNetwork {
    held_cr: bool,
}

impl FromNetwork {
    /// A converter at the start of a file.
    #[must_use]
    pub const fn new() -> Self {
        Self { held_cr: false }
    }

    /// Converts as much of `input` as fits in `output`. Returns (bytes of `input` consumed,
    /// bytes written). A CR at the end of `input` is held back until the next byte shows
    /// whether it ends a line; call [`FromNetwork::finish`] at the end of the file. With an
    /// `output` of at least 2 bytes it always makes progress.
    pub fn convert(&mut self, input: &[u8], output: &mut [u8]) -> (usize, usize) {
        let (mut i, mut o) = (0, 0);
        while i < input.len() {
            let b = input[i];
            if self.held_cr {
                if b == b'\n' {
                    if !emit(output, &mut o, b"\n") {
                        break;
                    }
                    i += 1;
                    self.held_cr = false;
                    continue;
                }
                if !emit(output, &mut o, b"\r") {
                    break;
                }
                self.held_cr = false;
            }
            if b == b'\r' {
                self.held_cr = true;
                i += 1;
                continue;
            }
            if !emit(output, &mut o, &[b]) {
                break;
            }
            i += 1;
        }
        (i, o)
    }

    /// Writes a CR still held at the end of the file; returns the bytes written (0 or 1).
    /// `output` must have room for one byte.
    pub fn finish(&mut self, output: &mut [u8]) -> usize {
        if self.held_cr && !output.is_empty() {
            self.held_cr = false;
            output[0] = b'\r';
            1
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Feeds `input` to `convert` in pieces of `chunk` bytes, through an output buffer of
    /// `out_len` bytes; returns what it wrote and the buffer.
    fn run(
        input: &[u8],
        chunk: usize,
        out_len: usize,
        mut convert: impl FnMut(&[u8], &mut [u8]) -> (usize, usize),
    ) -> (Vec<u8>, Vec<u8>) {
        let mut res = Vec::new();
        let mut out = std::vec![0u8; out_len];
        for piece in input.chunks(chunk) {
            let mut rest = piece;
            while !rest.is_empty() {
                let (used, n) = convert(rest, &mut out);
                res.extend_from_slice(&out[..n]);
                rest = &rest[used..];
            }
        }
        (res, out)
    }

    fn to_net(input: &[u8], chunk: usize, out_len: usize) -> Vec<u8> {
        let mut c = ToNetwork::new();
        run(input, chunk, out_len, |i, o| c.convert(i, o)).0
    }

    fn from_net(input: &[u8], chunk: usize, out_len: usize) -> Vec<u8> {
        let mut c = FromNetwork::new();
        let (mut res, mut out) = run(input, chunk, out_len, |i, o| c.convert(i, o));
        let n = c.finish(&mut out);
        res.extend_from_slice(&out[..n]);
        res
    }

    #[test]
    fn conversions_in_any_chunking() {
        let text = b"a\nb\r\nc\rd\n\n\r";
        for chunk in 1..=text.len() {
            for out_len in [2, 3, 64] {
                assert_eq!(to_net(text, chunk, out_len), b"a\r\nb\r\nc\rd\r\n\r\n\r");
                assert_eq!(
                    from_net(b"a\r\nb\r\nc\rd\r\n\r", chunk, out_len),
                    b"a\nb\nc\rd\n\r"
                );
            }
        }
    }

    #[test]
    fn roundtrip_of_unix_text() {
        let text = b"line one\nline two\n\nlast";
        assert_eq!(from_net(&to_net(text, 5, 7), 3, 4), text);
    }
}
