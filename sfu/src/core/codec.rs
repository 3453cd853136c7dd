//! Just enough of the video payload formats to forward without decoding: is this packet the
//! start of a keyframe, and what size is that keyframe. Every function takes untrusted bytes and
//! returns `None` or `false` rather than panic on anything short or strange.

/// The start of a keyframe, with its picture size when the format carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyframeStart {
    /// Width and height in pixels, if known.
    pub(crate) size: Option<(u16, u16)>,
}

/// The video codecs the SFU forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoCodec {
    Vp8,
    H264,
    Other,
}

/// Whether an RTP payload starts a keyframe, and its size if the codec says.
pub(crate) fn keyframe_start(codec: VideoCodec, payload: &[u8]) -> Option<KeyframeStart> {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe_start(payload),
        VideoCodec::H264 => h264_is_keyframe(payload).then_some(KeyframeStart { size: None }),
        VideoCodec::Other => None,
    }
}

/// VP8 (RFC 7741): the payload descriptor, then for the first packet of a frame the VP8 frame
/// header, whose first bit is 0 for a keyframe; a keyframe then has a start code and the size.
fn vp8_keyframe_start(payload: &[u8]) -> Option<KeyframeStart> {
    let first = *payload.first()?;
    let extended = first & 0x80 != 0;
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x07;
    if !start_of_partition || partition_id != 0 {
        return None;
    }
    let mut at = 1;
    if extended {
        let x = *payload.get(at)?;
        at += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            let m = *payload.get(at)? & 0x80 != 0;
            at += if m { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    let frame = payload.get(at..)?;
    let tag = *frame.first()?;
    if tag & 0x01 != 0 {
        return None; // An interframe.
    }
    // Keyframe: 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height.
    let size = match frame.get(3..10) {
        Some([0x9d, 0x01, 0x2a, w0, w1, h0, h1]) => Some((
            u16::from_le_bytes([*w0, *w1]) & 0x3fff,
            u16::from_le_bytes([*h0, *h1]) & 0x3fff,
        )),
        _ => None,
    };
    Some(KeyframeStart { size })
}

/// H.264 (RFC 6184): an IDR slice or a sequence parameter set, alone, in a STAP-A, or at the
/// start of an FU-A.
fn h264_is_keyframe(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    const STAP_A: u8 = 24;
    const FU_A: u8 = 28;
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        IDR | SPS => true,
        STAP_A => {
            let mut rest = &payload[1..];
            while let [hi, lo, nal, ..] = rest {
                let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                if matches!(nal & 0x1f, IDR | SPS) {
                    return true;
                }
                let Some(next) = rest.get(2 + len..) else {
                    return false;
                };
                rest = next;
            }
            false
        }
        FU_A => match payload.get(1) {
            Some(fu) => fu & 0x80 != 0 && fu & 0x1f == IDR,
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 payload as Chrome sends it: extended descriptor with a 15-bit picture id.
    fn vp8(keyframe: bool, start: bool) -> Vec<u8> {
        let mut p = vec![0x80 | if start { 0x10 } else { 0 }, 0x80, 0x81, 0x23];
        if keyframe {
            p.extend_from_slice(&[0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xd0, 0x02]);
        } else {
            p.extend_from_slice(&[0x31, 0x05, 0x00, 0x11, 0x22]);
        }
        p
    }

    #[test]
    fn vp8_keyframe_with_its_size() {
        let k = keyframe_start(VideoCodec::Vp8, &vp8(true, true));
        assert_eq!(
            k,
            Some(KeyframeStart {
                size: Some((640, 720))
            })
        );
    }

    #[test]
    fn vp8_interframes_and_continuations_are_not_keyframe_starts() {
        assert_eq!(keyframe_start(VideoCodec::Vp8, &vp8(false, true)), None);
        assert_eq!(keyframe_start(VideoCodec::Vp8, &vp8(true, false)), None);
    }

    #[test]
    fn h264_idr_sps_stap_a_and_fu_a() {
        assert!(h264_is_keyframe(&[0x65, 1, 2]));
        assert!(h264_is_keyframe(&[0x67, 1, 2]));
        assert!(!h264_is_keyframe(&[0x41, 1, 2]));
        // STAP-A carrying an SEI (6) then an SPS (7).
        assert!(h264_is_keyframe(&[0x18, 0, 2, 0x06, 0xaa, 0, 1, 0x67]));
        assert!(!h264_is_keyframe(&[0x18, 0, 2, 0x06, 0xaa, 0, 1, 0x41]));
        // FU-A start of an IDR, and its continuation.
        assert!(h264_is_keyframe(&[0x7c, 0x85, 0]));
        assert!(!h264_is_keyframe(&[0x7c, 0x05, 0]));
    }

    #[test]
    fn short_and_strange_payloads_never_panic() {
        let mut bytes = crate::test_bytes::Pseudorandom::new(0x2545_f491);
        for len in 0..64 {
            for _ in 0..200 {
                let b = bytes.take(len);
                let _ = keyframe_start(VideoCodec::Vp8, &b);
                let _ = keyframe_start(VideoCodec::H264, &b);
            }
        }
        // Lengths that claim more than is there.
        assert!(!h264_is_keyframe(&[0x18, 0xff, 0xff, 0x41]));
        assert_eq!(keyframe_start(VideoCodec::Vp8, &[0x90, 0xff]), None);
    }
}
