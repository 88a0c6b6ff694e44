//! The PROXY protocol (HAProxy's specification, versions 1 and 2): the header a load
//! balancer sends first on every connection it makes, naming the client's address and the
//! address the client connected to.
//!
//! Sans-IO like the rest of the core: [`parse_proxy_header`] looks at the bytes received so
//! far and says either what the header holds and how long it was, or how many more bytes it
//! needs at least. **It never asks for a byte past the header:** every byte it asks for is
//! still part of the header, so a runtime that reads exactly what is asked for leaves the
//! client's own bytes (an FTP command, a TLS hello, an upload) in the socket. Version 2's
//! length is in its first 16 bytes; version 1 ends at its CR LF.
//!
//! Bounded: a version-1 line is at most [`V1_MAX`] bytes (the specification's limit), a
//! version-2 header at most 16 + [`V2_MAX_PAYLOAD`] bytes; anything longer is refused
//! before it is read. Version 2's TLVs are walked (each must fit in the header) and then
//! skipped: Ferry uses none of them.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::str::FromStr;

/// The 12 bytes that start a version-2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest version-1 header, `PROXY` to CR LF (the specification's limit).
pub const V1_MAX: usize = 107;

/// The shortest version-1 header: `PROXY UNKNOWN\r\n`.
const V1_MIN: usize = 15;

/// The largest version-2 payload (addresses and TLVs) accepted. The addresses take at most
/// 216 bytes (two UNIX paths); balancers add a few TLVs (an id, TLS facts) of tens of bytes.
pub const V2_MAX_PAYLOAD: usize = 2048;

/// The fixed part of a version-2 header: signature, version and command, family, length.
const V2_FIXED: usize = 16;

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyAddresses {
    /// The balancer's own connection (version 2's LOCAL, a health check say), or a family
    /// without IP addresses (version 1's UNKNOWN, version 2's UNSPEC or UNIX): the
    /// connection's own addresses stand.
    Local,
    /// A proxied connection.
    Proxied {
        /// The client's address.
        source: SocketAddr,
        /// The address the client connected to (the balancer's).
        destination: SocketAddr,
    },
}

/// How far the header is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyParse {
    /// A complete header of `len` bytes; the connection's own bytes start after it.
    Header {
        /// What it says.
        addresses: ProxyAddresses,
        /// Its length in bytes.
        len: usize,
    },
    /// At least this many more bytes are needed, all of them still header.
    Need(usize),
}

/// Why the bytes are not an acceptable header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// Neither version's signature: no header was sent.
    NotAHeader,
    /// A header that breaks the specification at the named part.
    Malformed(&'static str),
    /// Longer than [`V1_MAX`] or 16 + [`V2_MAX_PAYLOAD`] bytes.
    TooLong,
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAHeader => f.write_str("no PROXY protocol header"),
            Self::Malformed(what) => write!(f, "malformed PROXY protocol header ({what})"),
            Self::TooLong => f.write_str("PROXY protocol header too long"),
        }
    }
}

impl core::error::Error for ProxyError {}

/// Parses the PROXY header at the start of `input`, which holds what was received so far.
///
/// # Errors
/// [`ProxyError::NotAHeader`] when `input` starts with neither signature; otherwise what is
/// wrong with the header. An error is final: more bytes would not mend it.
pub fn parse_proxy_header(input: &[u8]) -> Result<ProxyParse, ProxyError> {
    const V1_START: &[u8] = b"PROXY ";
    let sig_len = |sig: &[u8]| input.len().min(sig.len());
    if input.is_empty() {
        return Ok(ProxyParse::Need(1));
    }
    if input[..sig_len(&V2_SIGNATURE)] == V2_SIGNATURE[..sig_len(&V2_SIGNATURE)] {
        return v2(input);
    }
    if input[..sig_len(V1_START)] == V1_START[..sig_len(V1_START)] {
        return v1(input);
    }
    Err(ProxyError::NotAHeader)
}

/// Version 2: `input` starts with (a prefix of) the signature.
fn v2(input: &[u8]) -> Result<ProxyParse, ProxyError> {
    if input.len() < V2_FIXED {
        return Ok(ProxyParse::Need(V2_FIXED - input.len()));
    }
    let (version, command) = (input[12] >> 4, input[12] & 0x0F);
    if version != 2 {
        return Err(ProxyError::Malformed("version"));
    }
    let payload = usize::from(u16::from_be_bytes([input[14], input[15]]));
    if payload > V2_MAX_PAYLOAD {
        return Err(ProxyError::TooLong);
    }
    let len = V2_FIXED + payload;
    if input.len() < len {
        return Ok(ProxyParse::Need(len - input.len()));
    }
    let body = &input[V2_FIXED..len];
    let (family, transport) = (input[13] >> 4, input[13] & 0x0F);
    if transport > 2 {
        return Err(ProxyError::Malformed("transport"));
    }
    let (addresses, used) = match family {
        0 => (ProxyAddresses::Local, 0),
        1 => {
            let a = body
                .get(..12)
                .ok_or(ProxyError::Malformed("IPv4 addresses"))?;
            let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            let source = SocketAddr::new(ip(0), port(8));
            let destination = SocketAddr::new(ip(4), port(10));
            (
                ProxyAddresses::Proxied {
                    source,
                    destination,
                },
                12,
            )
        }
        2 => {
            let a = body
                .get(..36)
                .ok_or(ProxyError::Malformed("IPv6 addresses"))?;
            let ip = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            let source = SocketAddr::new(ip(0), port(32));
            let destination = SocketAddr::new(ip(16), port(34));
            (
                ProxyAddresses::Proxied {
                    source,
                    destination,
                },
                36,
            )
        }
        3 if body.len() >= 216 => (ProxyAddresses::Local, 216),
        3 => return Err(ProxyError::Malformed("UNIX addresses")),
        _ => return Err(ProxyError::Malformed("address family")),
    };
    let addresses = match command {
        // LOCAL: the receiver uses the connection's own addresses, whatever the block says.
        0 => ProxyAddresses::Local,
        1 => addresses,
        _ => return Err(ProxyError::Malformed("command")),
    };
    skip_tlvs(&body[used..])?;
    Ok(ProxyParse::Header { addresses, len })
}

/// Walks the TLVs after the addresses: each is a type byte, a 16-bit length and its value,
/// and the last must end where the header ends.
fn skip_tlvs(mut tlvs: &[u8]) -> Result<(), ProxyError> {
    while !tlvs.is_empty() {
        let [_kind, hi, lo, rest @ ..] = tlvs else {
            return Err(ProxyError::Malformed("TLV"));
        };
        let n = usize::from(u16::from_be_bytes([*hi, *lo]));
        tlvs = rest.get(n..).ok_or(ProxyError::Malformed("TLV length"))?;
    }
    Ok(())
}

/// Version 1: `input` starts with (a prefix of) `PROXY `.
fn v1(input: &[u8]) -> Result<ProxyParse, ProxyError> {
    let window = &input[..input.len().min(V1_MAX)];
    let Some(cr) = window.windows(2).position(|w| w == b"\r\n") else {
        if !window
            .iter()
            .all(|&b| b == b'\r' || (b' '..=b'~').contains(&b))
        {
            return Err(ProxyError::Malformed("not printable"));
        }
        if input.len() >= V1_MAX {
            return Err(ProxyError::TooLong);
        }
        // No CR LF yet: every byte up to it is header, and it is at least V1_MIN long.
        return Ok(ProxyParse::Need(V1_MIN.saturating_sub(input.len()).max(1)));
    };
    // Printable text only, also in an UNKNOWN line whose rest is otherwise ignored.
    if !input[..cr].iter().all(|b| (b' '..=b'~').contains(b)) {
        return Err(ProxyError::Malformed("not printable"));
    }
    let line = core::str::from_utf8(&input[..cr]).map_err(|_| ProxyError::Malformed("text"))?;
    let len = cr + 2;
    let mut words = line.split(' ');
    let _proxy = words.next();
    let addresses = match words.next() {
        Some("UNKNOWN") => ProxyAddresses::Local,
        Some(family @ ("TCP4" | "TCP6")) => {
            let v6 = family == "TCP6";
            let mut next = |what| words.next().ok_or(ProxyError::Malformed(what));
            let src = v1_ip(next("source address")?, v6)?;
            let dst = v1_ip(next("destination address")?, v6)?;
            let sport = v1_port(next("source port")?)?;
            let dport = v1_port(next("destination port")?)?;
            if words.next().is_some() {
                return Err(ProxyError::Malformed("trailing words"));
            }
            ProxyAddresses::Proxied {
                source: SocketAddr::new(src, sport),
                destination: SocketAddr::new(dst, dport),
            }
        }
        _ => return Err(ProxyError::Malformed("protocol")),
    };
    Ok(ProxyParse::Header { addresses, len })
}

fn v1_ip(word: &str, v6: bool) -> Result<IpAddr, ProxyError> {
    let ip = if v6 {
        Ipv6Addr::from_str(word).map(IpAddr::V6)
    } else {
        Ipv4Addr::from_str(word).map(IpAddr::V4)
    };
    ip.map_err(|_| ProxyError::Malformed("address"))
}

/// A port: 1 to 5 decimal digits, no sign, no leading zero (but "0" itself), at most 65535.
fn v1_port(word: &str) -> Result<u16, ProxyError> {
    let digits = !word.is_empty() && word.len() <= 5 && word.bytes().all(|b| b.is_ascii_digit());
    if !digits || (word.len() > 1 && word.starts_with('0')) {
        return Err(ProxyError::Malformed("port"));
    }
    word.parse().map_err(|_| ProxyError::Malformed("port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(input: &[u8]) -> (ProxyAddresses, usize) {
        match parse_proxy_header(input) {
            Ok(ProxyParse::Header { addresses, len }) => (addresses, len),
            other => panic!("{input:?}: {other:?}"),
        }
    }

    fn proxied(src: &str, dst: &str) -> ProxyAddresses {
        ProxyAddresses::Proxied {
            source: src.parse().unwrap(),
            destination: dst.parse().unwrap(),
        }
    }

    #[test]
    fn version_1_tcp4_tcp6_and_unknown() {
        let line = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 21\r\nUSER x\r\n";
        assert_eq!(
            header(line),
            (proxied("192.0.2.1:56324", "198.51.100.2:21"), 44)
        );
        let line = b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
        assert_eq!(header(line).0, proxied("[2001:db8::1]:1", "[::1]:65535"));
        assert_eq!(header(b"PROXY UNKNOWN\r\n"), (ProxyAddresses::Local, 15));
        assert_eq!(header(b"PROXY UNKNOWN a b c\r\n").0, ProxyAddresses::Local);
    }

    #[test]
    fn version_1_refusals() {
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n"[..],
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 21 x\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n",
            b"PROXY TCP4 001.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY \x01\r\n",
            b"PROXY UNKNOWN :: 1\n\r\n",
        ] {
            assert!(
                matches!(parse_proxy_header(bad), Err(ProxyError::Malformed(_))),
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
        let long = [b'P', b'R', b'O', b'X', b'Y', b' '];
        let mut buf = [b'1'; V1_MAX];
        buf[..6].copy_from_slice(&long);
        assert_eq!(parse_proxy_header(&buf), Err(ProxyError::TooLong));
        assert_eq!(
            parse_proxy_header(b"USER x\r\n"),
            Err(ProxyError::NotAHeader)
        );
        assert_eq!(
            parse_proxy_header(b"GET / HTTP/1.0"),
            Err(ProxyError::NotAHeader)
        );
    }

    #[test]
    fn asks_only_for_header_bytes() {
        assert_eq!(parse_proxy_header(b""), Ok(ProxyParse::Need(1)));
        assert_eq!(parse_proxy_header(b"PRO"), Ok(ProxyParse::Need(12)));
        assert_eq!(
            parse_proxy_header(b"PROXY UNKNOWN\r"),
            Ok(ProxyParse::Need(1))
        );
        assert_eq!(
            parse_proxy_header(&V2_SIGNATURE[..5]),
            Ok(ProxyParse::Need(11))
        );
        let mut v2 = [0u8; 16];
        v2[..12].copy_from_slice(&V2_SIGNATURE);
        v2[12] = 0x21;
        v2[13] = 0x11;
        v2[15] = 12;
        assert_eq!(parse_proxy_header(&v2), Ok(ProxyParse::Need(12)));
    }

    #[test]
    fn version_2_local_proxy_tlvs_and_bounds() {
        let mut h = [0u8; 16 + 12 + 7];
        h[..12].copy_from_slice(&V2_SIGNATURE);
        h[12] = 0x21;
        h[13] = 0x11;
        h[15] = 12 + 7;
        h[16..20].copy_from_slice(&[10, 0, 0, 1]);
        h[20..24].copy_from_slice(&[10, 0, 0, 2]);
        h[24..26].copy_from_slice(&4000u16.to_be_bytes());
        h[26..28].copy_from_slice(&21u16.to_be_bytes());
        // Two TLVs: an empty one, and one of 1 byte.
        h[28..35].copy_from_slice(&[0x04, 0, 0, 0x05, 0, 1, 7]);
        assert_eq!(header(&h), (proxied("10.0.0.1:4000", "10.0.0.2:21"), 35));
        h[33] = 2; // the TLV now runs past the header
        assert_eq!(
            parse_proxy_header(&h),
            Err(ProxyError::Malformed("TLV length"))
        );
        h[33] = 1;
        h[12] = 0x20; // LOCAL
        assert_eq!(header(&h).0, ProxyAddresses::Local);
        h[12] = 0x22;
        assert_eq!(
            parse_proxy_header(&h),
            Err(ProxyError::Malformed("command"))
        );
        h[12] = 0x11;
        assert_eq!(
            parse_proxy_header(&h),
            Err(ProxyError::Malformed("version"))
        );
        h[12] = 0x21;
        h[13] = 0x13;
        assert_eq!(
            parse_proxy_header(&h),
            Err(ProxyError::Malformed("transport"))
        );
        h[13] = 0x21; // IPv6 needs 36 bytes
        assert_eq!(
            parse_proxy_header(&h),
            Err(ProxyError::Malformed("IPv6 addresses"))
        );
        h[13] = 0x11;
        h[14..16].copy_from_slice(&u16::try_from(V2_MAX_PAYLOAD + 1).unwrap().to_be_bytes());
        assert_eq!(parse_proxy_header(&h), Err(ProxyError::TooLong));
    }
}
