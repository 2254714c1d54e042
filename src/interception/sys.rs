//! The system calls the rest of the crate has no safe binding for: a network namespace's cookie,
//! which the kernel programs compare with the dialling socket's to tell the node's own
//! (hostNetwork) sockets from pods', and an interface's index in this namespace.
#![allow(unsafe_code)]

use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// `SO_NETNS_COOKIE` (Linux 5.14; `asm-generic/socket.h`).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of the network namespace this process runs in, or `None` where the kernel cannot
/// tell it (before 5.14): the programs then take the initial namespace's, which is the node's
/// wherever the guard runs as a hostNetwork pod.
pub fn own_netns_cookie() -> std::io::Result<Option<u64>> {
    let socket = UdpSocket::bind("127.0.0.1:0").or_else(|_| UdpSocket::bind("[::1]:0"))?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the socket is open for the whole call; `cookie` and `len` are valid for writes of
    // the sizes given, and the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        return Ok(Some(cookie));
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOPROTOOPT) => Ok(None),
        _ => Err(err),
    }
}

/// The index of interface `name` in this process's network namespace (`if_nametoindex`, which
/// asks the kernel through a socket of this namespace, unlike `/sys/class/net`).
pub fn ifindex(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string for the whole call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

#[cfg(test)]
mod tests;
