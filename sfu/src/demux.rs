//! The first look at a datagram on the media port: what it is (RFC 7983: STUN, DTLS, RTP or RTCP
//! by its first byte, RFC 5761 for RTP vs RTCP) and whether it is whole enough to be worth
//! routing; for a STUN binding request, the local ICE username fragment it names (which says the
//! shard of the peer it is for, see `shard.rs`). Pure functions, no state: the fuzz target
//! `media_demux` drives [`classify`] and [`stun_request_ufrag`].

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

/// STUN header: type, length, magic cookie, transaction id (RFC 8489 §5).
const STUN_HEADER: usize = 20;
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const STUN_BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
const STUN_USERNAME: u16 = 0x0006;

/// For a STUN binding request, the local (our) ICE username fragment it is addressed to: the
/// part of its USERNAME before the colon (RFC 8445 §7.2.2: "RFRAG:LFRAG" as the sender writes
/// it, the receiver's fragment first). `None` for anything else or a malformed message.
pub fn stun_request_ufrag(data: &[u8]) -> Option<&[u8]> {
    if data.len() < STUN_HEADER
        || data[0..2] != STUN_BINDING_REQUEST
        || data[4..8] != STUN_MAGIC_COOKIE
    {
        return None;
    }
    let declared = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let mut attributes = data.get(STUN_HEADER..STUN_HEADER + declared)?;
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let len = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let value = attributes.get(4..4 + len)?;
        if kind == STUN_USERNAME {
            let end = value.iter().position(|b| *b == b':')?;
            return Some(&value[..end]);
        }
        // Values are padded to a multiple of 4 bytes.
        let padded = 4 + len.div_ceil(4) * 4;
        attributes = attributes.get(padded..)?;
    }
    None
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

    fn binding_request(attributes: &[u8]) -> Vec<u8> {
        let mut stun = vec![0x00, 0x01];
        stun.extend((attributes.len() as u16).to_be_bytes());
        stun.extend(STUN_MAGIC_COOKIE);
        stun.extend([9u8; 12]);
        stun.extend(attributes);
        stun
    }

    #[test]
    fn the_local_ufrag_is_read_from_a_binding_request_s_username() {
        // PRIORITY (4 bytes), then USERNAME "01ab:xyz" (8 bytes), then a padded one.
        let mut attributes = vec![0x00, 0x24, 0, 4, 1, 2, 3, 4];
        attributes.extend([0x00, 0x06, 0, 8]);
        attributes.extend(b"01ab:xyz");
        assert_eq!(
            stun_request_ufrag(&binding_request(&attributes)),
            Some(&b"01ab"[..])
        );
        let mut padded = vec![0x00, 0x06, 0, 6];
        padded.extend(b"0f:abc\0\0");
        assert_eq!(
            stun_request_ufrag(&binding_request(&padded)),
            Some(&b"0f"[..])
        );
    }

    #[test]
    fn no_ufrag_from_responses_truncated_or_colonless_usernames() {
        let mut attributes = vec![0x00, 0x06, 0, 4];
        attributes.extend(b"01ab");
        assert_eq!(stun_request_ufrag(&binding_request(&attributes)), None);
        let mut response = binding_request(&[0x00, 0x06, 0, 4, b'a', b':', b'b', b'c']);
        response[0..2].copy_from_slice(&[0x01, 0x01]);
        assert_eq!(stun_request_ufrag(&response), None);
        // USERNAME longer than the message, and a length field past the end.
        let request = binding_request(&[0x00, 0x06, 0, 40, b'a', b':']);
        assert_eq!(stun_request_ufrag(&request), None);
        let mut request = binding_request(&[0x00, 0x06, 0, 2, b'a', b':', 0, 0]);
        request[3] = 200;
        assert_eq!(stun_request_ufrag(&request), None);
        assert_eq!(stun_request_ufrag(&[0, 1, 0]), None);
    }
}
