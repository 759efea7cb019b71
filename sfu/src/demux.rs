//! The first look at a datagram on the media port: what it is (RFC 7983: STUN, DTLS, RTP or RTCP
//! by its first byte, RFC 5761 for RTP vs RTCP) and whether it is whole enough to be worth
//! routing. Pure functions, no state: the fuzz target `media_demux` drives [`classify`].

use str0m::net::DatagramRecv;

/// What a datagram is, as far as the demultiplexer can tell without any peer's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramKind {
    Stun,
    Dtls,
    Rtp,
    Rtcp,
    /// Unparseable or truncated: dropped and counted.
    Garbage,
}

/// Smallest RTP header (RFC 3550 §5.1) and RTCP header plus sender SSRC (§6.4).
const RTP_HEADER: usize = 12;
const RTCP_HEADER: usize = 8;

/// Classifies one datagram (see the module doc).
pub fn classify(data: &[u8]) -> DatagramKind {
    match parse(data) {
        Some((kind, _)) => kind,
        None => DatagramKind::Garbage,
    }
}

/// The datagram's kind and str0m's view of it, or `None` for garbage.
pub(crate) fn parse(data: &[u8]) -> Option<(DatagramKind, DatagramRecv<'_>)> {
    let first = *data.first()?;
    let kind = match first {
        0..=3 => DatagramKind::Stun,
        20..=63 => DatagramKind::Dtls,
        128..=191 => {
            // RTCP packet types 192-223 (RFC 5761 §4); the marker bit is part of that byte.
            match data.get(1) {
                Some(192..=223) => DatagramKind::Rtcp,
                Some(_) => DatagramKind::Rtp,
                None => return None,
            }
        }
        _ => return None,
    };
    if !whole(kind, data) {
        return None;
    }
    let recv = DatagramRecv::try_from(data).ok()?;
    Some((kind, recv))
}

/// Cheap length checks str0m leaves to later stages (for RTP: header, CSRCs, extension).
fn whole(kind: DatagramKind, data: &[u8]) -> bool {
    match kind {
        DatagramKind::Rtp => {
            if data.len() < RTP_HEADER {
                return false;
            }
            let csrcs = usize::from(data[0] & 0x0f) * 4;
            let mut len = RTP_HEADER + csrcs;
            if data[0] & 0x10 != 0 {
                let Some(ext) = data.get(len + 2..len + 4) else {
                    return false;
                };
                len += 4 + usize::from(u16::from_be_bytes([ext[0], ext[1]])) * 4;
            }
            data.len() >= len
        }
        DatagramKind::Rtcp => data.len() >= RTCP_HEADER,
        // A DTLS record header is 13 bytes.
        DatagramKind::Dtls => data.len() >= 13,
        DatagramKind::Stun | DatagramKind::Garbage => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_unknown_datagrams_are_garbage() {
        for data in [
            &[][..],
            &[0x80],
            &[0x80, 0x60, 0, 1],
            // RTP with an extension header that runs past the end.
            &[0x90, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0xbe, 0xde, 0, 9],
            &[22, 0xfe, 0xfd, 0],
            &[0, 1, 0, 8, 0x21, 0x12],
            &[70, 1, 2, 3],
            &[255; 40],
        ] {
            assert_eq!(classify(data), DatagramKind::Garbage, "{data:?}");
        }
    }

    #[test]
    fn whole_headers_are_classified_by_their_first_bytes() {
        let mut rtp = vec![0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2];
        rtp.extend([0u8; 20]);
        assert_eq!(classify(&rtp), DatagramKind::Rtp);
        let rtcp = [0x81, 201, 0, 1, 0, 0, 0, 2];
        assert_eq!(classify(&rtcp), DatagramKind::Rtcp);
        let dtls = [22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(classify(&dtls), DatagramKind::Dtls);
        // STUN goes through str0m's parser (real binding requests: the live tests).
    }
}
