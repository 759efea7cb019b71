//! The media socket: one UDP socket for every peer, with kernel buffers large enough to ride out a
//! few tens of milliseconds in which the SFU thread is not scheduled. With Linux's default
//! (~208 KiB) a loaded machine drops datagrams before we ever see them (the load test counted
//! 2 M `RcvbufErrors`), so the sizes are asked for explicitly and what the kernel granted is
//! logged and exported.

use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Kernel buffer sizes asked for by default (`media.udp_recv_buffer_bytes`,
/// `media.udp_send_buffer_bytes`): at 1.4 Mbit/s of video per session, 8 MiB holds about 40 ms
/// of 1000 sessions' traffic.
pub const DEFAULT_SOCKET_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// What was asked for and what the kernel granted (as `getsockopt` reports it; Linux reports
/// twice the usable size, its bookkeeping overhead included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketBuffers {
    pub recv_requested: usize,
    pub recv_granted: usize,
    pub send_requested: usize,
    pub send_granted: usize,
}

impl SocketBuffers {
    /// Linux doubles the value it accepts, then caps it at `net.core.rmem_max` / `wmem_max`
    /// (before doubling): a grant below the doubled request means the cap applied.
    fn capped(requested: usize, granted: usize) -> bool {
        let factor = if cfg!(target_os = "linux") { 2 } else { 1 };
        requested > 0 && granted < requested.saturating_mul(factor)
    }

    pub fn recv_capped(&self) -> bool {
        Self::capped(self.recv_requested, self.recv_granted)
    }

    pub fn send_capped(&self) -> bool {
        Self::capped(self.send_requested, self.send_granted)
    }
}

/// Binds the media socket (non-blocking) with the requested buffer sizes (0 = the kernel's
/// default). A refused size is not fatal: the socket keeps what the kernel gives, and the log
/// says how to raise the cap.
pub(crate) fn bind(
    addr: SocketAddr,
    recv_bytes: usize,
    send_bytes: usize,
) -> std::io::Result<(UdpSocket, SocketBuffers)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if recv_bytes > 0
        && let Err(e) = socket.set_recv_buffer_size(recv_bytes)
    {
        tracing::warn!(error = %e, recv_bytes, "media socket: receive buffer size refused");
    }
    if send_bytes > 0
        && let Err(e) = socket.set_send_buffer_size(send_bytes)
    {
        tracing::warn!(error = %e, send_bytes, "media socket: send buffer size refused");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let buffers = SocketBuffers {
        recv_requested: recv_bytes,
        recv_granted: socket.recv_buffer_size()?,
        send_requested: send_bytes,
        send_granted: socket.send_buffer_size()?,
    };
    tracing::info!(
        recv_requested = buffers.recv_requested,
        recv_granted = buffers.recv_granted,
        send_requested = buffers.send_requested,
        send_granted = buffers.send_granted,
        "media socket buffers"
    );
    if buffers.recv_capped() || buffers.send_capped() {
        tracing::warn!(
            recv_granted = buffers.recv_granted,
            send_granted = buffers.send_granted,
            "media socket buffers smaller than asked: the kernel caps them at net.core.rmem_max / \
             net.core.wmem_max; raise those (e.g. `sysctl -w net.core.rmem_max={} \
             net.core.wmem_max={}`) or expect datagrams dropped under load",
            recv_bytes.max(send_bytes),
            recv_bytes.max(send_bytes),
        );
    }
    Ok((socket.into(), buffers))
}

/// Turns on UDP GRO (`UDP_GRO`, Linux ≥ 5.0): the kernel may then hand over several datagrams
/// of one source as one (split again by [`crate::io::RecvBatch`]), which costs one pass through
/// the receive path instead of one per datagram. Whether it took is returned and logged; without
/// it every datagram arrives alone, as before.
pub(crate) fn enable_gro(socket: &UdpSocket) -> bool {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt::UdpGroSegment};
        match setsockopt(socket, UdpGroSegment, &true) {
            Ok(()) => true,
            Err(e) => {
                tracing::info!(error = %e, "media socket: UDP GRO not available");
                false
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        false
    }
}

/// Datagrams the kernel dropped on this socket because its receive buffer was full (the
/// `drops` column of `/proc/net/udp{,6}`, found by the socket's inode). `None` where that is not
/// available (not Linux, no /proc).
pub fn kernel_drops(socket: &UdpSocket) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
        let inode = link
            .to_str()?
            .strip_prefix("socket:[")?
            .strip_suffix(']')?
            .to_owned();
        ["/proc/net/udp", "/proc/net/udp6"]
            .into_iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .find_map(|table| drops_of(&table, &inode))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        None
    }
}

/// The `drops` column (the last) of the row whose `inode` column (the tenth) is `inode`.
fn drops_of(table: &str, inode: &str) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(9) == Some(&inode))
            .then(|| fields.last()?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_read_from_the_row_of_the_socket_s_inode() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                     \x20 1: 0100007F:0D96 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0\n\
                     \x20 2: 0100007F:1F90 00000000:0000 07 00000000:00034000 00:00000000 00000000     0        0 777 2 0000000000000000 1234\n";
        assert_eq!(drops_of(table, "777"), Some(1234));
        assert_eq!(drops_of(table, "4242"), Some(0));
        assert_eq!(drops_of(table, "77"), None);
    }

    #[test]
    fn a_full_receive_buffer_shows_as_kernel_drops() {
        // A socket nobody reads, with the smallest buffer the kernel allows, overflows at once.
        let (full, buffers) = bind("127.0.0.1:0".parse().unwrap(), 4096, 0).unwrap();
        assert!(buffers.recv_granted > 0);
        let before = kernel_drops(&full).expect("/proc/net/udp lists the socket");
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = full.local_addr().unwrap();
        for _ in 0..200 {
            sender.send_to(&[0u8; 1200], target).unwrap();
        }
        let after = kernel_drops(&full).unwrap();
        assert!(after > before, "drops {before} -> {after}");
    }

    #[test]
    fn the_granted_buffer_sizes_are_reported() {
        // 64 KiB is under every Linux default cap (rmem_max is 208 KiB out of the box).
        let asked = 64 * 1024;
        let (socket, buffers) = bind("127.0.0.1:0".parse().unwrap(), asked, asked).unwrap();
        let check = Socket::from(socket);
        assert_eq!(buffers.recv_granted, check.recv_buffer_size().unwrap());
        assert_eq!(buffers.send_granted, check.send_buffer_size().unwrap());
        assert!(buffers.recv_granted >= asked, "{buffers:?}");
        assert!(
            !buffers.recv_capped() && !buffers.send_capped(),
            "{buffers:?}"
        );
        // A request far over any cap is granted only in part, and said so.
        let huge = 1 << 30;
        let (_, buffers) = bind("127.0.0.1:0".parse().unwrap(), huge, huge).unwrap();
        assert!(
            buffers.recv_granted < 2 * huge && buffers.recv_capped(),
            "{buffers:?}"
        );
    }
}
