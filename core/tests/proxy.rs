//! The PROXY protocol parser against a reference encoder written from the specification
//! (proptest): every header it writes, of either version, with any TLVs and whatever the
//! client sends after it, parses back to the same addresses and length; no prefix of a
//! header asks for a byte past its end; arbitrary bytes never panic.

mod fuzz_checks;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ferry_core::{ProxyAddresses, ProxyParse, V2_SIGNATURE, parse_proxy_header};
use proptest::prelude::*;

/// The reference encoder: version 1 text.
fn encode_v1(a: &ProxyAddresses) -> Vec<u8> {
    match a {
        ProxyAddresses::Local => b"PROXY UNKNOWN\r\n".to_vec(),
        ProxyAddresses::Proxied {
            source,
            destination,
        } => {
            let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            )
            .into_bytes()
        }
    }
}

/// The reference encoder: version 2, with these TLVs (type, value) after the addresses.
fn encode_v2(a: &ProxyAddresses, tlvs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    let (command, family) = match a {
        ProxyAddresses::Local => (0x20, 0x00),
        ProxyAddresses::Proxied {
            source,
            destination,
        } => {
            let family = match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    body.extend_from_slice(&s.octets());
                    body.extend_from_slice(&d.octets());
                    0x11
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    body.extend_from_slice(&s.octets());
                    body.extend_from_slice(&d.octets());
                    0x21
                }
                _ => unreachable!("one family per header"),
            };
            body.extend_from_slice(&source.port().to_be_bytes());
            body.extend_from_slice(&destination.port().to_be_bytes());
            (0x21, family)
        }
    };
    for (kind, value) in tlvs {
        body.push(*kind);
        body.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        body.extend_from_slice(value);
    }
    let mut out = V2_SIGNATURE.to_vec();
    out.push(command);
    out.push(family);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn addresses() -> impl Strategy<Value = ProxyAddresses> {
    let v4 = (any::<u32>(), any::<u16>())
        .prop_map(|(ip, p)| SocketAddr::new(Ipv4Addr::from(ip).into(), p));
    let v6 = (any::<u128>(), any::<u16>())
        .prop_map(|(ip, p)| SocketAddr::new(Ipv6Addr::from(ip).into(), p));
    prop_oneof![
        Just(ProxyAddresses::Local),
        (v4.clone(), v4).prop_map(|(source, destination)| ProxyAddresses::Proxied {
            source,
            destination
        }),
        (v6.clone(), v6).prop_map(|(source, destination)| ProxyAddresses::Proxied {
            source,
            destination
        }),
    ]
}

fn tlvs() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    prop::collection::vec(
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..64)),
        0..8,
    )
}

/// What the client sends after the header: FTP commands or a TLS hello, say.
fn after() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..64)
}

fn round_trip(header: &[u8], after: &[u8], addresses: ProxyAddresses) -> Result<(), TestCaseError> {
    let mut wire = header.to_vec();
    wire.extend_from_slice(after);
    prop_assert_eq!(
        parse_proxy_header(&wire),
        Ok(ProxyParse::Header {
            addresses,
            len: header.len()
        })
    );
    for k in 0..header.len() {
        match parse_proxy_header(&header[..k]) {
            Ok(ProxyParse::Need(n)) => prop_assert!(n >= 1 && k + n <= header.len(), "{k} + {n}"),
            other => prop_assert!(false, "prefix of {k}: {other:?}"),
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn version_1_round_trips(a in addresses(), after in after()) {
        round_trip(&encode_v1(&a), &after, a)?;
    }

    #[test]
    fn version_2_round_trips(a in addresses(), tlvs in tlvs(), after in after()) {
        round_trip(&encode_v2(&a, &tlvs), &after, a)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        fuzz_checks::proxy(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_signature(v2 in any::<bool>(), rest in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = if v2 { V2_SIGNATURE.to_vec() } else { b"PROXY ".to_vec() };
        bytes.extend_from_slice(&rest);
        fuzz_checks::proxy(&bytes);
    }
}
