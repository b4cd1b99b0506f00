//! Who owns the other end of a loopback TCP connection, as the kernel's socket tables
//! say: the uid of the socket whose local address is the connection's remote address
//! and whose remote address is the connection's local address, from `/proc/net/tcp`
//! and `/proc/net/tcp6`.
//!
//! TCP has no `SO_PEERCRED`; on loopback both ends live in this kernel, and the table
//! row of the client's socket carries the uid that created it. The answer is as good
//! as the moment it is read: the row exists while the connection is open, which is the
//! whole time the endpoint serves it. A socket handed to another process (fd passing,
//! fork) keeps its creator's uid, which is the owner the endpoint wants anyway.
//! Connections from another network namespace never reach the broker's loopback.
//!
//! This module reads only the two table files and must never guess: no row, or two
//! rows that disagree, is "unknown", and the endpoint then refuses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The uid owning the client socket of the connection the broker sees as
/// `local` (its own end) and `remote` (the client's end); None when the tables have
/// no such row or disagree.
pub fn client_uid(local: SocketAddr, remote: SocketAddr) -> Option<u32> {
    let mut found: Option<u32> = None;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for uid in rows_matching(&text, remote, local) {
            match found {
                Some(u) if u != uid => return None,
                _ => found = Some(uid),
            }
        }
    }
    found
}

/// The uids of the rows whose local address is `local` and remote address `remote`.
fn rows_matching(text: &str, local: SocketAddr, remote: SocketAddr) -> Vec<u32> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid ...
        if f.len() < 8 {
            continue;
        }
        let (Some(l), Some(r)) = (parse_addr(f[1]), parse_addr(f[2])) else {
            continue;
        };
        if same(l, local)
            && same(r, remote)
            && let Ok(uid) = f[7].parse::<u32>()
        {
            out.push(uid);
        }
    }
    out
}

/// Compares addresses with IPv4-mapped IPv6 folded to IPv4.
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && canonical(a.ip()) == canonical(b.ip())
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:PORT` (IPv6). The kernel prints each
/// 32-bit word of the address in host byte order, the port as a plain number.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).ok()?.to_ne_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn addresses_parse_as_the_kernel_prints_them() {
        if cfg!(target_endian = "little") {
            assert_eq!(
                parse_addr("0100007F:1F90"),
                Some("127.0.0.1:8080".parse().unwrap())
            );
            assert_eq!(
                parse_addr("00000000000000000000000001000000:0050"),
                Some("[::1]:80".parse().unwrap())
            );
        }
        assert_eq!(parse_addr("zz:1"), None);
        assert_eq!(parse_addr("0100007F"), None);
    }

    #[test]
    fn the_client_end_of_a_loopback_connection_is_ours() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, remote) = l.accept().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(client_uid(s.local_addr().unwrap(), remote), Some(me));
        // A connection that does not exist has no owner.
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(client_uid(s.local_addr().unwrap(), nobody), None);
        drop(c);
    }

    #[test]
    fn ipv6_loopback_connections_are_found_too() {
        let Ok(l) = TcpListener::bind("[::1]:0") else {
            return; // no IPv6 loopback on this machine
        };
        let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, remote) = l.accept().unwrap();
        assert_eq!(
            client_uid(s.local_addr().unwrap(), remote),
            Some(nix::unistd::geteuid().as_raw())
        );
    }
}
