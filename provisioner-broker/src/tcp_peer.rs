//! Who owns the other end of a loopback TCP connection, as the kernel's socket tables
//! say: the uid of the socket whose local address is the connection's remote address
//! and whose remote address is the connection's local address. The kernel is asked for
//! that one socket over netlink (`sock_diag`, an exact lookup by address and port, as
//! `ss` does); where netlink is unavailable, `/proc/net/tcp` and `/proc/net/tcp6` are
//! read instead (slower: every socket of the host, `TIME_WAIT` included, is listed).
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
    match diag::client_uid(local, remote) {
        Ok(found) => found,
        Err(_) => table_client_uid(local, remote),
    }
}

/// [`client_uid`] from `/proc/net/tcp{,6}`.
pub fn table_client_uid(local: SocketAddr, remote: SocketAddr) -> Option<u32> {
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

/// The exact lookup over `NETLINK_SOCK_DIAG` (`inet_diag_req_v2` without
/// `NLM_F_DUMP`): the kernel finds the socket by its four-tuple in its hash tables.
mod diag {
    use std::net::{IpAddr, SocketAddr};
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto,
        setsockopt, socket, sockopt,
    };
    use nix::sys::time::TimeVal;

    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST: u16 = 1;
    const NLMSG_ERROR: u16 = 2;
    const AF_INET: u8 = 2;
    const AF_INET6: u8 = 10;
    const IPPROTO_TCP: u8 = 6;
    /// `nlmsghdr` (16) + `inet_diag_req_v2` (8 + `inet_diag_sockid` 48).
    const REQ_LEN: usize = 72;
    /// Offset of `idiag_uid` in the answer: `nlmsghdr` + 4 + sockid + 3 * u32.
    const UID_AT: usize = 16 + 4 + 48 + 12;

    /// Ok(None): the kernel has no such socket. Err: netlink itself failed.
    pub fn client_uid(local: SocketAddr, remote: SocketAddr) -> Result<Option<u32>, ()> {
        // The client's socket: its local end is `remote`, its peer is `local`. An IPv4
        // connection may come from an AF_INET6 socket (v4-mapped), as Java makes them.
        let mut tries = vec![(family(remote.ip()), remote, local)];
        if let (IpAddr::V4(r), IpAddr::V4(l)) = (remote.ip(), local.ip()) {
            tries.push((
                AF_INET6,
                SocketAddr::new(IpAddr::V6(r.to_ipv6_mapped()), remote.port()),
                SocketAddr::new(IpAddr::V6(l.to_ipv6_mapped()), local.port()),
            ));
        }
        for (fam, src, dst) in tries {
            if let Some(uid) = lookup(fam, src, dst)? {
                return Ok(Some(uid));
            }
        }
        Ok(None)
    }

    fn family(ip: IpAddr) -> u8 {
        if ip.is_ipv4() { AF_INET } else { AF_INET6 }
    }

    fn words(ip: IpAddr) -> [u8; 16] {
        match ip {
            IpAddr::V4(v4) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&v4.octets());
                b
            }
            IpAddr::V6(v6) => v6.octets(),
        }
    }

    fn lookup(fam: u8, src: SocketAddr, dst: SocketAddr) -> Result<Option<u32>, ()> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )
        .map_err(|_| ())?;
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(1, 0)).map_err(|_| ())?;
        let mut req = Vec::with_capacity(REQ_LEN);
        req.extend_from_slice(&(REQ_LEN as u32).to_ne_bytes());
        req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        req.extend_from_slice(&1u32.to_ne_bytes()); // seq
        req.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
        req.extend_from_slice(&[fam, IPPROTO_TCP, 0, 0]);
        req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
        req.extend_from_slice(&src.port().to_be_bytes());
        req.extend_from_slice(&dst.port().to_be_bytes());
        req.extend_from_slice(&words(src.ip()));
        req.extend_from_slice(&words(dst.ip()));
        req.extend_from_slice(&0u32.to_ne_bytes()); // any interface
        req.extend_from_slice(&u32::MAX.to_ne_bytes()); // INET_DIAG_NOCOOKIE
        req.extend_from_slice(&u32::MAX.to_ne_bytes());
        sendto(
            fd.as_raw_fd(),
            &req,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )
        .map_err(|_| ())?;
        let mut buf = [0u8; 4096];
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|_| ())?;
        let answer = buf.get(..n).ok_or(())?;
        let kind = u16::from_ne_bytes([*answer.get(4).ok_or(())?, *answer.get(5).ok_or(())?]);
        if kind == NLMSG_ERROR {
            // ENOENT: no such socket. Any other error code: netlink is not usable here.
            let code =
                i32::from_ne_bytes(answer.get(16..20).ok_or(())?.try_into().map_err(|_| ())?);
            return if code == -2 { Ok(None) } else { Err(()) };
        }
        if kind != SOCK_DIAG_BY_FAMILY {
            return Err(());
        }
        let uid = answer.get(UID_AT..UID_AT + 4).ok_or(())?;
        Ok(Some(u32::from_ne_bytes(uid.try_into().map_err(|_| ())?)))
    }
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
        let local = s.local_addr().unwrap();
        assert_eq!(client_uid(local, remote), Some(me));
        // Both ways of asking agree.
        assert_eq!(table_client_uid(local, remote), Some(me));
        if let Ok(found) = diag::client_uid(local, remote) {
            assert_eq!(found, Some(me));
        }
        // A connection that does not exist has no owner.
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(client_uid(local, nobody), None);
        assert_eq!(table_client_uid(local, nobody), None);
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
