//! MLLP framing: each HL7 message travels between a start block (0x0B) and
//! an end block (0x1C 0x0D). Pure: bytes in, frames out, no I/O.

/// Start of a frame.
pub const START: u8 = 0x0B;
/// End of a frame: these two bytes.
pub const END: [u8; 2] = [0x1C, 0x0D];

/// What is wrong with the bytes a sender sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame grew past {max} bytes without its end block")]
    TooLarge { max: usize },
    #[error("byte 0x{byte:02X} outside a frame (a frame starts with 0x0B)")]
    OutsideFrame { byte: u8 },
}

/// Splits a connection's bytes into frames. Line breaks between frames are
/// tolerated (some senders add them); any other byte outside a frame, or a
/// frame longer than the limit, is an error after which the connection
/// cannot be trusted to be in step and should be closed.
#[derive(Debug)]
pub struct Deframer {
    buf: Vec<u8>,
    max: usize,
}

impl Deframer {
    /// Frames of at most `max` bytes between the blocks.
    pub fn new(max: usize) -> Deframer {
        Deframer {
            buf: Vec::new(),
            max,
        }
    }

    /// Adds bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame's content, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let skip = self
            .buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        self.buf.drain(..skip);
        let Some(&first) = self.buf.first() else {
            return Ok(None);
        };
        if first != START {
            return Err(FrameError::OutsideFrame { byte: first });
        }
        match self.buf.windows(2).position(|w| w == END) {
            Some(end) => {
                let frame = self.buf[1..end].to_vec();
                self.buf.drain(..end + 2);
                if frame.len() > self.max {
                    return Err(FrameError::TooLarge { max: self.max });
                }
                Ok(Some(frame))
            }
            None if self.buf.len() > self.max + 2 => Err(FrameError::TooLarge { max: self.max }),
            None => Ok(None),
        }
    }

    /// Whether part of a frame is waiting for the rest.
    pub fn is_mid_frame(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// `message` in its frame.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START);
    out.extend_from_slice(message);
    out.extend_from_slice(&END);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_come_out_whole_however_the_bytes_arrive() {
        let bytes = [frame(b"MSH|one"), b"\r\n".to_vec(), frame(b"MSH|two")].concat();
        for split in 0..bytes.len() {
            let mut d = Deframer::new(100);
            let mut frames = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                d.push(part);
                while let Some(f) = d.next_frame().expect("good bytes") {
                    frames.push(f);
                }
            }
            assert_eq!(frames, [b"MSH|one".to_vec(), b"MSH|two".to_vec()]);
            assert!(!d.is_mid_frame());
        }
    }

    #[test]
    fn bytes_outside_a_frame_and_oversized_frames_are_errors() {
        let mut d = Deframer::new(100);
        d.push(b"GET / HTTP/1.1");
        assert_eq!(d.next_frame(), Err(FrameError::OutsideFrame { byte: b'G' }));
        let mut d = Deframer::new(4);
        d.push(&frame(b"MSH|toolong"));
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge { max: 4 }));
        let mut d = Deframer::new(4);
        d.push(&[START, b'a', b'b', b'c', b'd', b'e', b'f', b'g']);
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge { max: 4 }));
    }

    proptest! {
        /// Any bytes: an error or frames, never a panic, and never more
        /// bytes held than the limit allows.
        #[test]
        fn any_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut d = Deframer::new(128);
            for chunk in chunks {
                d.push(&chunk);
                loop {
                    match d.next_frame() {
                        Ok(Some(f)) => prop_assert!(f.len() <= 128),
                        Ok(None) => break,
                        Err(_) => return Ok(()),
                    }
                }
                prop_assert!(d.buf.len() <= 128 + 2 + 64);
            }
        }

        /// Messages framed and concatenated come back as they were.
        #[test]
        fn framing_round_trips(messages in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no end block", |b| *b != 0x1C), 0..40), 0..8)) {
            let mut d = Deframer::new(64);
            for m in &messages {
                d.push(&frame(m));
            }
            for m in &messages {
                prop_assert_eq!(d.next_frame().expect("good"), Some(m.clone()));
            }
            prop_assert_eq!(d.next_frame().expect("good"), None);
        }
    }
}
