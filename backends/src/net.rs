//! Address lists: [`Cidr`], a network written `10.0.0.0/8`, `2001:db8::/32` or a bare
//! address (one host). Used by the settings (who may send a PROXY header) and by accounts.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A network: an address and how many leading bits of it must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

/// Why a text is not a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError;

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected an address or a network such as 10.0.0.0/8 or 2001:db8::/32")
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// The network of `addr` with `bits` leading bits (at most 32 for IPv4, 128 for IPv6).
    ///
    /// # Errors
    /// Too many bits for the family.
    pub fn new(addr: IpAddr, bits: u8) -> Result<Self, CidrError> {
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return Err(CidrError);
        }
        Ok(Self { addr, bits })
    }

    /// Whether `ip` is in the network. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`)
    /// counts as its IPv4 address.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()) << 96,
                u128::from(ip.to_bits()) << 96,
                self.bits,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(net.to_bits(), ip.to_bits(), self.bits),
            _ => false,
        }
    }

    /// Whether any network of `list` holds `ip`.
    #[must_use]
    pub fn any_contains(list: &[Self], ip: IpAddr) -> bool {
        list.iter().any(|c| c.contains(ip))
    }
}

fn prefix_eq(a: u128, b: u128, bits: u8) -> bool {
    bits == 0 || (a ^ b) >> (128 - u32::from(bits)) == 0
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let s = s.trim();
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => {
                let digits = !b.is_empty() && b.len() <= 3 && b.bytes().all(|c| c.is_ascii_digit());
                (
                    a,
                    digits
                        .then(|| b.parse::<u8>().ok())
                        .flatten()
                        .ok_or(CidrError)?,
                )
            }
            None => (s, u8::MAX),
        };
        let written: IpAddr = addr.parse().map_err(|_| CidrError)?;
        let addr = written.to_canonical();
        let bits = match (bits, written.is_ipv4(), addr.is_ipv4()) {
            (u8::MAX, _, true) => 32,
            (u8::MAX, _, false) => 128,
            // An IPv4-mapped network, ::ffff:10.0.0.0/104: its IPv4 part.
            (b, false, true) => b.checked_sub(96).ok_or(CidrError)?,
            (b, _, _) => b,
        };
        Self::new(addr, bits)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_hold_their_addresses() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(net.contains(ip("::ffff:10.1.0.1")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(!net.contains(ip("::1")));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::")));
        assert_eq!(
            "::ffff:10.0.0.0/104".parse::<Cidr>().map(|c| c.to_string()),
            Ok("10.0.0.0/8".into())
        );
        let one: Cidr = "10.0.0.7/31".parse().unwrap();
        assert!(one.contains(ip("10.0.0.6")) && !one.contains(ip("10.0.0.8")));
    }

    #[test]
    fn bad_networks_are_refused() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0/8",
            "host",
            "10.0.0.0/8/8",
            "::ffff:10.0.0.0/8",
        ] {
            assert_eq!(bad.parse::<Cidr>(), Err(CidrError), "{bad}");
        }
    }
}
