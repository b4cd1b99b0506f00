//! Who is on the other end of the socket, as the kernel says: `SO_PEERCRED` (uid,
//! gid, pid at connect time), the peer's login name, the Unix groups of a user, and
//! the identity of a process that survives pid reuse (pid plus its start time since
//! boot, plus the boot id).
//!
//! Nothing here trusts what the peer says about itself. Lookups go through the
//! system's user database (getpwuid_r, getgrouplist), so they may block on NSS:
//! callers run them on blocking threads.

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Gid, Group, Uid, User, getgrouplist};

/// The socket peer as the kernel recorded it when it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

/// Reads `SO_PEERCRED` of a connected Unix socket.
pub fn peer_cred(sock: &impl AsFd) -> std::io::Result<PeerCred> {
    let c = getsockopt(sock, PeerCredentials).map_err(std::io::Error::from)?;
    Ok(PeerCred {
        uid: c.uid(),
        gid: c.gid(),
        pid: c.pid(),
    })
}

/// The login name of a uid, if the user database has one.
pub fn login_name(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// The uid of a login name, if the user database has it.
pub fn uid_of(name: &str) -> Option<u32> {
    User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
}

/// The names of every group `login` belongs to (primary and supplementary); empty
/// when the user does not exist.
pub fn groups_of(login: &str) -> Vec<String> {
    let Some(user) = User::from_name(login).ok().flatten() else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(login) else {
        return Vec::new();
    };
    let gids = getgrouplist(&name, user.gid).unwrap_or_else(|_| vec![user.gid]);
    let mut names: Vec<String> = gids
        .into_iter()
        .filter_map(|g: Gid| Group::from_gid(g).ok().flatten().map(|g| g.name))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A process's start time in clock ticks after boot (field 22 of `/proc/PID/stat`).
/// With the boot id it names one process for good: pids are reused, start times
/// within one boot are not.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces and ')':
    // the fields after the last ')' are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts with field 3 (state); field 22 is the 20th after it.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Whether the process a session recorded is still the one running under that pid.
pub fn process_alive(pid: i32, start_time: u64, boot: &str, this_boot: &str) -> bool {
    boot == this_boot && process_start_time(pid) == Some(start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time_and_the_peer_of_a_socket_pair_is_us() {
        let me = std::process::id() as i32;
        let t = process_start_time(me).expect("start time of this process");
        assert!(process_alive(me, t, &boot_id(), &boot_id()));
        assert!(!process_alive(me, t + 1, &boot_id(), &boot_id()));
        assert!(!process_alive(me, t, "another-boot", &boot_id()));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let c = peer_cred(&a).unwrap();
        assert_eq!(c.pid, me);
        assert_eq!(c.uid, nix::unistd::geteuid().as_raw());
    }

    #[test]
    fn root_is_known_and_in_its_group() {
        assert_eq!(login_name(0).as_deref(), Some("root"));
        assert_eq!(uid_of("root"), Some(0));
        assert!(groups_of("root").contains(&"root".to_string()));
        assert!(groups_of("no-such-user-here").is_empty());
    }
}
