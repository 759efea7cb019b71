//! RFC 4571 framing, as ICE-TCP (RFC 6544) uses it: on a TCP connection every STUN, DTLS, RTP
//! or RTCP packet is preceded by its length in two bytes (network order). Pure and bounded: a
//! connection's decoder owns one fixed buffer, so a peer that sends a huge length or never
//! finishes a frame costs at most [`BUFFER`] bytes. The fuzz target `tcp_framing` drives it.

/// Largest frame taken: as large as the biggest UDP datagram the media port reads, since a frame
/// carries what a datagram would. A longer declared length is garbage (the connection is closed:
/// its framing can no longer be trusted).
pub const MAX_FRAME: usize = 2048;
/// A decoder's buffer: room for a whole largest frame after any incomplete one has been moved
/// to the front, so a read always has space.
pub const BUFFER: usize = 2 * (2 + MAX_FRAME);

/// A declared frame length over [`MAX_FRAME`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized(pub usize);

/// Splits a byte stream into frames. Feed it with [`FrameDecoder::spare`] +
/// [`FrameDecoder::filled`], then take frames with [`FrameDecoder::next_frame`] until `None`.
pub struct FrameDecoder {
    buf: Box<[u8; BUFFER]>,
    start: usize,
    end: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        FrameDecoder {
            buf: Box::new([0; BUFFER]),
            start: 0,
            end: 0,
        }
    }

    /// Where the next read goes: never empty once [`FrameDecoder::next_frame`] has returned
    /// `Ok(None)` (what is left is less than one largest frame).
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into [`FrameDecoder::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(BUFFER);
    }

    /// Bytes received but not yet taken as a frame.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// The next whole frame (possibly empty: a zero length, which the caller counts as garbage),
    /// `Ok(None)` when more bytes are needed, or `Err` for a length over [`MAX_FRAME`].
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, Oversized> {
        let available = &self.buf[self.start..self.end];
        let [high, low, ..] = *available else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([high, low]));
        if len > MAX_FRAME {
            return Err(Oversized(len));
        }
        if available.len() < 2 + len {
            return Ok(None);
        }
        let frame = self.start + 2..self.start + 2 + len;
        self.start += 2 + len;
        Ok(Some(&self.buf[frame]))
    }
}

/// Appends `frame` with its length in front to `out`; `false` (nothing written) when it is too
/// long for two bytes.
pub fn encode(frame: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(len) = u16::try_from(frame.len()) else {
        return false;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(frame);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(decoder: &mut FrameDecoder, mut bytes: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let spare = decoder.spare();
            let n = chunk.min(spare.len()).min(bytes.len());
            spare[..n].copy_from_slice(&bytes[..n]);
            decoder.filled(n);
            bytes = &bytes[n..];
            while let Some(frame) = decoder.next_frame().unwrap() {
                frames.push(frame.to_vec());
            }
        }
        frames
    }

    #[test]
    fn frames_come_out_whole_however_the_stream_is_cut() {
        let sent: Vec<Vec<u8>> = vec![vec![1; 20], vec![], vec![2; MAX_FRAME], vec![3; 1]];
        let mut stream = Vec::new();
        for f in &sent {
            assert!(encode(f, &mut stream));
        }
        for chunk in [1, 2, 3, 7, 100, 5000] {
            let mut decoder = FrameDecoder::new();
            assert_eq!(feed(&mut decoder, &stream, chunk), sent, "chunk {chunk}");
            assert_eq!(decoder.pending(), 0);
        }
    }

    #[test]
    fn a_length_over_the_largest_frame_is_refused() {
        let mut decoder = FrameDecoder::new();
        let spare = decoder.spare();
        spare[..2].copy_from_slice(&((MAX_FRAME + 1) as u16).to_be_bytes());
        decoder.filled(2);
        assert_eq!(decoder.next_frame(), Err(Oversized(MAX_FRAME + 1)));
        assert!(!encode(&vec![0; 70_000], &mut Vec::new()));
    }
}
