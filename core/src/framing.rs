//! Control-channel framing: bytes in chunks of any size to whole command lines.
//!
//! Lines end at LF; a CR before it is dropped, so a bare LF works too (some clients omit the
//! mandatory CR). The framer never buffers: it looks at what the runtime holds and says how
//! much of it makes one line, so the only line buffer is the runtime's own, bounded by
//! [`Framer::input_capacity`]. A line longer than the limit is consumed to its LF and then
//! reported once as [`Frame::TooLong`] ("poison, don't discard": resynchronising in the
//! middle of a line would run its tail as a command).
//!
//! Telnet sequences (RFC 854) are removed from a line by [`strip_telnet`]: `IAC IAC` is a
//! literal 0xFF, `IAC WILL/WONT/DO/DONT x` and two-byte commands (`IAC IP`, `IAC DM`, ...)
//! are dropped, and a lone `IAC` before an ordinary byte is dropped (when the kernel takes
//! the urgent `DM` out of the stream, `IAC IP IAC ABOR` is what arrives).

/// Telnet "interpret as command".
pub const IAC: u8 = 0xFF;

/// What the framer found at the start of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole line, without its CR LF (telnet sequences not yet removed).
    Line(&'a [u8]),
    /// A line longer than the limit ended here; it was consumed and must be answered once.
    TooLong,
    /// No whole line yet: keep the unconsumed bytes and read more.
    Incomplete,
}

/// Splits input into lines. Holds one flag: whether it is skipping an over-long line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Framer {
    skipping: bool,
}

impl Framer {
    /// A framer at the start of a line.
    #[must_use]
    pub const fn new() -> Self {
        Self { skipping: false }
    }

    /// How many bytes the runtime must be able to hold for lines of at most `max_line` bytes:
    /// the line, its CR and its LF.
    #[must_use]
    pub const fn input_capacity(max_line: usize) -> usize {
        max_line + 2
    }

    /// Whether the framer is in the middle of an over-long line.
    #[must_use]
    pub const fn is_skipping(&self) -> bool {
        self.skipping
    }

    /// Finds the next frame at the start of `input`, and how many bytes of `input` it used.
    ///
    /// `Incomplete` with 0 used means "keep everything and read more"; while skipping an
    /// over-long line everything is used. Memory never grows with input: once more than
    /// `max_line + 2` bytes hold no LF, they are consumed and dropped.
    pub fn next<'a>(&mut self, input: &'a [u8], max_line: usize) -> (Frame<'a>, usize) {
        if self.skipping {
            return match memchr_lf(input) {
                Some(i) => {
                    self.skipping = false;
                    (Frame::TooLong, i + 1)
                }
                None => (Frame::Incomplete, input.len()),
            };
        }
        let window = &input[..input.len().min(Self::input_capacity(max_line))];
        match memchr_lf(window) {
            Some(i) => {
                let line = &input[..i];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.len() > max_line {
                    (Frame::TooLong, i + 1)
                } else {
                    (Frame::Line(line), i + 1)
                }
            }
            None if input.len() >= Self::input_capacity(max_line) => {
                // Too long: if its end is already here, consume up to it; otherwise skip.
                match memchr_lf(&input[window.len()..]) {
                    Some(i) => (Frame::TooLong, window.len() + i + 1),
                    None => {
                        self.skipping = true;
                        (Frame::Incomplete, input.len())
                    }
                }
            }
            None => (Frame::Incomplete, 0),
        }
    }
}

fn memchr_lf(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// Removes telnet sequences from `line`. Returns `line` itself when it holds no `IAC`
/// (the common case, zero-copy); otherwise writes the filtered line into `scratch`, which
/// must be at least as long as `line`, and returns that.
#[must_use]
pub fn strip_telnet<'a>(line: &'a [u8], scratch: &'a mut [u8]) -> &'a [u8] {
    if !line.contains(&IAC) {
        return line;
    }
    let mut out = 0;
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b != IAC {
            scratch[out] = b;
            out += 1;
            i += 1;
            continue;
        }
        match line.get(i + 1) {
            Some(&IAC) => {
                scratch[out] = IAC;
                out += 1;
                i += 2;
            }
            // WILL, WONT, DO, DONT take an option byte.
            Some(251..=254) => i += 3,
            // Two-byte commands: SE, NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, SB.
            Some(240..=250) => i += 2,
            // A lone IAC (at the end, or before an ordinary byte): drop it.
            _ => i += 1,
        }
    }
    &scratch[..out]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize, chunk: usize) -> std::vec::Vec<std::vec::Vec<u8>> {
        // Simulates a runtime buffer fed `chunk` bytes at a time.
        let mut f = Framer::new();
        let mut buf = std::vec::Vec::new();
        let mut out = std::vec::Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                let (frame, used) = f.next(&buf, max);
                let done = used == 0 || frame == Frame::Incomplete;
                match frame {
                    Frame::Line(l) => out.push(l.to_vec()),
                    Frame::TooLong => out.push(b"<too long>".to_vec()),
                    Frame::Incomplete => {}
                }
                buf.drain(..used);
                assert!(buf.len() <= Framer::input_capacity(max));
                if done {
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn splits_at_crlf_and_bare_lf_in_any_chunking() {
        let input = b"USER a\r\nPASS b\nNOOP\r\n\r\nPWD\r\npartial";
        for chunk in 1..input.len() + 1 {
            let got = lines(input, 64, chunk);
            assert_eq!(
                got,
                [&b"USER a"[..], b"PASS b", b"NOOP", b"", b"PWD"].map(<[u8]>::to_vec),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn overlong_lines_are_consumed_and_reported_once() {
        let mut input = std::vec![b'x'; 100];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        for chunk in [1, 3, 7, 50, 200] {
            assert_eq!(
                lines(&input, 10, chunk),
                [&b"<too long>"[..], b"NOOP"].map(<[u8]>::to_vec),
                "chunk {chunk}"
            );
        }
        // Exactly the limit is fine; one more is not.
        assert_eq!(lines(b"0123456789\r\n", 10, 100), [b"0123456789".to_vec()]);
        assert_eq!(lines(b"0123456789a\r\n", 10, 100), [b"<too long>".to_vec()]);
    }

    #[test]
    fn telnet_sequences_are_removed() {
        let mut scratch = [0u8; 64];
        let cases: [(&[u8], &[u8]); 7] = [
            (b"NOOP", b"NOOP"),
            (b"\xff\xf4\xff\xf2ABOR", b"ABOR"),
            (b"\xff\xf4\xffABOR", b"ABOR"),
            (b"AB\xff\xfb\x01OR", b"ABOR"),
            (b"STOR a\xff\xffb", b"STOR a\xffb"),
            (b"NOOP\xff", b"NOOP"),
            (b"\xff\xfd", b""),
        ];
        for (input, want) in cases {
            assert_eq!(strip_telnet(input, &mut scratch), want, "{input:?}");
        }
    }
}
