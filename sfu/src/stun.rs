//! Just enough STUN (RFC 8489) to route a datagram from an address not seen before: the local
//! ICE user fragment in a binding request's USERNAME (`"<sfu ufrag>:<client ufrag>"`). The
//! room's own ICE agent (str0m) checks the request's integrity; this only picks the room.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const HEADER: usize = 20;
const USERNAME: u16 = 0x0006;

/// The SFU-side ICE user fragment named by a STUN message, if it is one and names one.
pub(crate) fn local_ufrag(datagram: &[u8]) -> Option<&str> {
    let header = datagram.get(..HEADER)?;
    // STUN: the two top bits are zero and the magic cookie is in place.
    if header[0] & 0xc0 != 0 || header[4..8] != MAGIC_COOKIE {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut attributes = datagram.get(HEADER..HEADER + length)?;
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let len = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let value = attributes.get(4..4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next().filter(|u| !u.is_empty());
        }
        // Attributes are padded to a multiple of four bytes.
        let padded = 4 + len.div_ceil(4) * 4;
        attributes = attributes.get(padded..)?;
    }
    None
}

/// The `a=ice-ufrag` of an SDP, if it has one.
pub(crate) fn sdp_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A PRIORITY attribute first, then USERNAME with padding.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        attrs.extend_from_slice(&USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        msg.extend_from_slice(&MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attrs);
        msg
    }

    #[test]
    fn finds_the_local_ufrag_of_a_binding_request() {
        assert_eq!(
            local_ufrag(&binding_request("sfuFrag:clientFrag")),
            Some("sfuFrag")
        );
        assert_eq!(local_ufrag(&binding_request("abc:d")), Some("abc"));
    }

    #[test]
    fn refuses_what_is_not_stun_or_names_nobody() {
        assert_eq!(local_ufrag(b""), None);
        assert_eq!(local_ufrag(&[0x80; 40]), None, "RTP is not STUN");
        assert_eq!(local_ufrag(&binding_request(":x")), None);
        let mut truncated = binding_request("abc:def");
        truncated.truncate(30);
        assert_eq!(local_ufrag(&truncated), None);
        let mut lying = binding_request("abc:def");
        lying[3] = 0xff; // claims more attributes than there are
        assert_eq!(local_ufrag(&lying), None);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut random = crate::test_bytes::Pseudorandom::new(0x9e37_79b9);
        for len in 0..80 {
            for _ in 0..300 {
                let mut bytes = random.take(len);
                if bytes.len() >= 8 {
                    bytes[0] &= 0x3f;
                    bytes[4..8].copy_from_slice(&MAGIC_COOKIE);
                }
                let _ = local_ufrag(&bytes);
            }
        }
    }

    #[test]
    fn reads_the_ufrag_of_an_sdp() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\na=ice-ufrag:Xy12\r\na=ice-pwd:secret\r\n";
        assert_eq!(sdp_ufrag(sdp), Some("Xy12"));
        assert_eq!(sdp_ufrag("v=0\r\n"), None);
    }
}
