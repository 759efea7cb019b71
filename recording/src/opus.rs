//! A safe wrapper over libopus 1.3.1 as translated to Rust (`unsafe-libopus`): a mono 48 kHz
//! decoder (with packet loss concealment) and encoder, all the mixer needs.
//!
//! Why this crate: the `opus` crate's bundled libopus needs cmake, and the server must build with
//! the Rust toolchain and a C compiler only. The translation is the reference decoder, so its
//! output matches ffmpeg's libopus (tests/it/opus_codec.rs measures it).

use std::io;

use unsafe_libopus as unsafe_ffi;

/// The recording's audio rate (WebRTC's Opus clock).
pub const RATE: i32 = 48_000;
/// The longest Opus packet: 120 ms.
pub const MAX_FRAME: usize = 5_760;

fn error(what: &str, code: i32) -> io::Error {
    io::Error::other(format!("opus {what}: error {code}"))
}

/// Decodes one talker's packets to mono 48 kHz samples (a stereo packet is downmixed).
pub struct Decoder {
    st: *mut unsafe_ffi::OpusDecoder,
}

// The state is owned by this value alone and libopus keeps no global state.
unsafe impl Send for Decoder {}

impl Decoder {
    pub fn new() -> io::Result<Decoder> {
        let mut err = 0;
        // SAFETY: valid arguments; the pointer is checked before use.
        let st = unsafe { unsafe_ffi::opus_decoder_create(RATE, 1, &mut err) };
        if st.is_null() || err != unsafe_ffi::OPUS_OK {
            return Err(error("decoder", err));
        }
        Ok(Decoder { st })
    }

    /// Decodes one packet into `out` (at least [`MAX_FRAME`] long); returns the samples written.
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32]) -> io::Result<usize> {
        if packet.is_empty() || packet.len() > i32::MAX as usize {
            return Err(error("decode", unsafe_ffi::OPUS_INVALID_PACKET));
        }
        let room = out.len().min(MAX_FRAME) as i32;
        // SAFETY: `packet` and `out` are valid for the lengths passed.
        let n = unsafe {
            unsafe_ffi::opus_decode_float(
                self.st,
                packet.as_ptr(),
                packet.len() as i32,
                out.as_mut_ptr(),
                room,
                0,
            )
        };
        if n < 0 {
            return Err(error("decode", n));
        }
        Ok(n as usize)
    }

    /// Packet loss concealment: fills `out` (a multiple of 2.5 ms, at most [`MAX_FRAME`]) with
    /// what the decoder predicts from the packets before the loss.
    pub fn conceal(&mut self, out: &mut [f32]) -> io::Result<usize> {
        let len = out.len().min(MAX_FRAME) as i32;
        // SAFETY: a null packet asks for concealment of `len` samples into `out`.
        let n = unsafe {
            unsafe_ffi::opus_decode_float(self.st, std::ptr::null(), 0, out.as_mut_ptr(), len, 0)
        };
        if n < 0 {
            return Err(error("conceal", n));
        }
        Ok(n as usize)
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { unsafe_ffi::opus_decoder_destroy(self.st) }
    }
}

/// Encodes mono 48 kHz frames (tuned for voice).
pub struct Encoder {
    st: *mut unsafe_ffi::OpusEncoder,
    lookahead: u16,
}

// As for the decoder: exclusively owned state.
unsafe impl Send for Encoder {}

impl Encoder {
    /// `bitrate` in bit/s; `complexity` 0–10 (CPU against quality).
    pub fn new(bitrate: i32, complexity: i32) -> io::Result<Encoder> {
        let mut err = 0;
        // SAFETY: valid arguments; the pointer is checked before use.
        let st = unsafe {
            unsafe_ffi::opus_encoder_create(RATE, 1, unsafe_ffi::OPUS_APPLICATION_VOIP, &mut err)
        };
        if st.is_null() || err != unsafe_ffi::OPUS_OK {
            return Err(error("encoder", err));
        }
        let mut enc = Encoder { st, lookahead: 0 };
        let mut lookahead = 0i32;
        // SAFETY: `st` is a live encoder; each request takes the argument type given.
        let rc = unsafe {
            let a =
                unsafe_ffi::opus_encoder_ctl!(st, unsafe_ffi::OPUS_SET_BITRATE_REQUEST, bitrate);
            let b = unsafe_ffi::opus_encoder_ctl!(
                st,
                unsafe_ffi::OPUS_SET_COMPLEXITY_REQUEST,
                complexity
            );
            let c = unsafe_ffi::opus_encoder_ctl!(
                st,
                unsafe_ffi::OPUS_SET_SIGNAL_REQUEST,
                unsafe_ffi::OPUS_SIGNAL_VOICE
            );
            let d = unsafe_ffi::opus_encoder_ctl!(
                st,
                unsafe_ffi::OPUS_GET_LOOKAHEAD_REQUEST,
                &mut lookahead
            );
            [a, b, c, d]
        };
        if let Some(&bad) = rc.iter().find(|&&r| r != unsafe_ffi::OPUS_OK) {
            return Err(error("encoder setup", bad));
        }
        enc.lookahead = u16::try_from(lookahead).unwrap_or(0);
        Ok(enc)
    }

    /// Samples the encoder delays its output by: the Opus header's pre-skip.
    pub fn lookahead(&self) -> u16 {
        self.lookahead
    }

    /// Encodes one frame (2.5–60 ms of samples; the mixer uses 20 ms).
    pub fn encode(&mut self, pcm: &[f32]) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; 1500];
        // SAFETY: `pcm` holds `pcm.len()` samples of one channel, `out` has room for 1500 bytes.
        let n = unsafe {
            unsafe_ffi::opus_encode_float(
                self.st,
                pcm.as_ptr(),
                pcm.len() as i32,
                out.as_mut_ptr(),
                out.len() as i32,
            )
        };
        if n < 0 {
            return Err(error("encode", n));
        }
        out.truncate(n as usize);
        Ok(out)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, destroyed once.
        unsafe { unsafe_ffi::opus_encoder_destroy(self.st) }
    }
}

/// libopus' soft clipper: keeps a sum of voices within [-1, 1] without hard-clipping
/// distortion. `mem` carries the clipper's state from one frame to the next.
pub fn soft_clip(pcm: &mut [f32], mem: &mut f32) {
    // SAFETY: one channel of `pcm.len()` samples, one state value.
    unsafe { unsafe_ffi::opus_pcm_soft_clip(pcm.as_mut_ptr(), pcm.len() as i32, 1, mem) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_a_tone() {
        let mut enc = Encoder::new(32_000, 5).unwrap();
        let mut dec = Decoder::new().unwrap();
        let mut out = vec![0f32; MAX_FRAME];
        let mut energy = 0.0;
        for k in 0..20 {
            let pcm: Vec<f32> = (0..960)
                .map(|i| {
                    let t = (k * 960 + i) as f32 / RATE as f32;
                    0.5 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                })
                .collect();
            let packet = enc.encode(&pcm).unwrap();
            assert!(!packet.is_empty());
            let n = dec.decode(&packet, &mut out).unwrap();
            assert_eq!(n, 960);
            if k > 5 {
                energy += out[..n].iter().map(|s| s * s).sum::<f32>();
            }
        }
        assert!(energy > 100.0, "the tone came back: {energy}");
        // Concealment continues the signal rather than failing.
        assert_eq!(dec.conceal(&mut out[..960]).unwrap(), 960);
        assert!(
            dec.decode(&[0xFF], &mut out).is_err(),
            "a bad packet is an error"
        );
        assert!(Encoder::new(32_000, 5).unwrap().lookahead() > 0);
    }

    #[test]
    fn soft_clip_keeps_samples_in_range() {
        let mut pcm: Vec<f32> = (0..960).map(|i| 1.8 * ((i as f32) / 30.0).sin()).collect();
        let mut mem = 0.0;
        soft_clip(&mut pcm, &mut mem);
        assert!(pcm.iter().all(|s| s.abs() <= 1.0));
    }
}
