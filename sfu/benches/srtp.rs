//! SRTP's per-packet cost, as the SFU pays it (str0m 0.25 with the aws-lc-rs backend), through
//! str0m's public API only (its SRTP context itself is private):
//!
//! - `srtp_cipher/<profile>/<protect|unprotect>/<opus|vp8>`: the cipher work of one packet for
//!   each SRTP profile, with the cipher objects str0m's crypto provider makes
//!   (`str0m::crypto::from_feature_flags()`): AEAD-AES-256-GCM and -128-GCM seal/open with the
//!   RTP header as associated data; AES-128-CM with HMAC-SHA1-80 encrypt + tag (protect) and
//!   tag + decrypt (unprotect). Key derivation is per session, not per packet, so not here.
//!   str0m, as DTLS server, picks AEAD-AES-256-GCM when the client offers it, then 128-GCM,
//!   then AES-CM-SHA1.
//! - `srtp_rtc/<opus|vp8>`: one packet through two connected str0m peers in memory (no sockets):
//!   `write_rtp` on the sender, its `Transmit` (RTP header written, SRTP protected) handed to the
//!   receiver as `Input::Receive` (SRTP unprotected, RTP parsed, the `RtpPacket` event). That is
//!   the SFU's per-packet str0m work on both sides of a forward, minus the socket calls.
//!
//! Payloads: 100 bytes (an Opus packet at 32 kbit/s with loadtest's stamp) and 1100 bytes (a
//! full VP8 chunk). Run: `cargo bench -p sfu --bench srtp`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::crypto::{CryptoProvider, from_feature_flags};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};

const SIZES: [(&str, usize); 2] = [("opus", 100), ("vp8", 1100)];
/// An RTP header with a few header extensions (mid, abs-send-time, TWCC), the AEAD's AAD.
const HEADER: usize = 24;
const GCM_TAG: usize = 16;
const SHA1_80_TAG: usize = 10;

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7) as u8).collect()
}

fn ciphers(c: &mut Criterion) {
    let provider: CryptoProvider = from_feature_flags();
    let srtp = provider.srtp_provider;
    let header = [0x90u8; HEADER];
    let iv12 = [7u8; 12];
    let iv16 = [7u8; 16];
    let mut g = c.benchmark_group("srtp_cipher");
    for (name, size) in SIZES {
        let plain = payload(size);
        g.throughput(Throughput::Elements(1));

        // AEAD-AES-256-GCM and AEAD-AES-128-GCM: the tag is in the output.
        let mut seal256 = srtp.aead_aes_256_gcm().create_cipher([1; 32], true);
        let mut open256 = srtp.aead_aes_256_gcm().create_cipher([1; 32], false);
        let mut seal128 = srtp.aead_aes_128_gcm().create_cipher([1; 16], true);
        let mut open128 = srtp.aead_aes_128_gcm().create_cipher([1; 16], false);
        let mut sealed256 = vec![0u8; size + GCM_TAG];
        let mut sealed128 = vec![0u8; size + GCM_TAG];
        seal256
            .encrypt(&iv12, &header, &plain, &mut sealed256)
            .unwrap();
        seal128
            .encrypt(&iv12, &header, &plain, &mut sealed128)
            .unwrap();
        let mut out = vec![0u8; size + GCM_TAG];
        g.bench_function(format!("aead_aes_256_gcm/protect/{name}"), |b| {
            b.iter(|| seal256.encrypt(&iv12, &header, black_box(&plain), &mut out))
        });
        g.bench_function(format!("aead_aes_256_gcm/unprotect/{name}"), |b| {
            b.iter(|| open256.decrypt(&iv12, &[&header], black_box(&sealed256), &mut out))
        });
        g.bench_function(format!("aead_aes_128_gcm/protect/{name}"), |b| {
            b.iter(|| seal128.encrypt(&iv12, &header, black_box(&plain), &mut out))
        });
        g.bench_function(format!("aead_aes_128_gcm/unprotect/{name}"), |b| {
            b.iter(|| open128.decrypt(&iv12, &[&header], black_box(&sealed128), &mut out))
        });

        // AES-128-CM + HMAC-SHA1-80: counter-mode encryption, then an HMAC-SHA1 over header,
        // ciphertext and rollover counter, cut to 10 bytes.
        let mut enc = srtp.aes_128_cm_sha1_80().create_cipher([1; 16], true);
        let mut dec = srtp.aes_128_cm_sha1_80().create_cipher([1; 16], false);
        let hmac = provider.sha1_hmac_provider;
        let auth_key = [3u8; 20];
        let roc = 0u32.to_be_bytes();
        let mut ct = vec![0u8; size];
        enc.encrypt(&iv16, &plain, &mut ct).unwrap();
        let tag = hmac.sha1_hmac(&auth_key, &[&header, &ct, &roc]);
        let mut out = vec![0u8; size];
        g.bench_function(format!("aes_128_cm_sha1_80/protect/{name}"), |b| {
            b.iter(|| {
                enc.encrypt(&iv16, black_box(&plain), &mut out).unwrap();
                black_box(hmac.sha1_hmac(&auth_key, &[&header, &out, &roc]))
            })
        });
        g.bench_function(format!("aes_128_cm_sha1_80/unprotect/{name}"), |b| {
            b.iter(|| {
                let t = hmac.sha1_hmac(&auth_key, &[&header, black_box(&ct), &roc]);
                assert_eq!(t[..SHA1_80_TAG], tag[..SHA1_80_TAG]);
                dec.decrypt(&iv16, &ct, &mut out)
            })
        });
    }
    g.finish();
}

/// A str0m peer with nothing but an address: the bench moves its datagrams by hand.
struct Peer {
    rtc: Rtc,
    addr: SocketAddr,
    connected: bool,
    received: u64,
    mid: Option<Mid>,
}

impl Peer {
    fn new(addr: &str) -> Peer {
        let addr: SocketAddr = addr.parse().unwrap();
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_vp8(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Peer {
            rtc,
            addr,
            connected: false,
            received: 0,
            mid: None,
        }
    }

    /// Runs the peer until it waits for time to pass; returns the datagrams it wants to send.
    fn drain(&mut self) -> Vec<Vec<u8>> {
        let now = Instant::now();
        let mut out = Vec::new();
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(t) => {
                    if t <= now {
                        self.rtc.handle_input(Input::Timeout(now)).unwrap();
                        continue;
                    }
                    return out;
                }
                Output::Transmit(t) => out.push(t.contents.to_vec()),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaAdded(m)) => self.mid = Some(m.mid),
                Output::Event(Event::RtpPacket(p)) => {
                    black_box(&p.payload);
                    self.received += 1;
                }
                Output::Event(_) => {}
            }
        }
    }

    fn receive(&mut self, from: SocketAddr, datagrams: Vec<Vec<u8>>) {
        for d in datagrams {
            let input = Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source: from,
                    destination: self.addr,
                    contents: d.as_slice().try_into().unwrap(),
                },
            );
            self.rtc.handle_input(input).unwrap();
        }
    }
}

/// Moves datagrams both ways until neither side has any.
fn exchange(a: &mut Peer, b: &mut Peer) {
    loop {
        let (to_b, to_a) = (a.drain(), b.drain());
        if to_b.is_empty() && to_a.is_empty() {
            return;
        }
        b.receive(a.addr, to_b);
        a.receive(b.addr, to_a);
    }
}

/// A sender (VP8 sendonly) and a receiver, connected (ICE, DTLS, SRTP keys) in memory.
fn connected_pair() -> (Peer, Peer) {
    let mut tx = Peer::new("10.0.0.1:1000");
    let mut rx = Peer::new("10.0.0.2:2000");
    let mut api = tx.rtc.sdp_api();
    let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    tx.mid = Some(mid);
    let offer = SdpOffer::from_sdp_string(&offer.to_sdp_string()).unwrap();
    let answer = rx.rtc.sdp_api().accept_offer(offer).unwrap();
    let answer = SdpAnswer::from_sdp_string(&answer.to_sdp_string()).unwrap();
    tx.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    let start = Instant::now();
    while !(tx.connected && rx.connected) {
        assert!(start.elapsed().as_secs() < 10, "the peers did not connect");
        exchange(&mut tx, &mut rx);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    (tx, rx)
}

fn rtc_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("srtp_rtc");
    for (name, size) in SIZES {
        let (mut tx, mut rx) = connected_pair();
        let pt = tx.rtc.codec_config().params()[0].pt();
        let mid = tx.mid.unwrap();
        let data = payload(size);
        let mut seq = 0u64;
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter(|| {
                seq += 1;
                let before = rx.received;
                let mut api = tx.rtc.direct_api();
                let stream = api.stream_tx_by_mid(mid, None).unwrap();
                stream.write_rtp(
                    RtpWrite::new(
                        pt,
                        seq.into(),
                        (seq * 3000) as u32,
                        Instant::now(),
                        data.clone(),
                    )
                    .marker(true),
                );
                let out = tx.drain();
                rx.receive(tx.addr, out);
                // RTCP back to the sender, so neither side's queues grow.
                let back = rx.drain();
                tx.receive(rx.addr, back);
                assert_eq!(rx.received, before + 1, "the packet did not arrive");
            })
        });
    }
    g.finish();
}

criterion_group!(benches, ciphers, rtc_path);
criterion_main!(benches);
