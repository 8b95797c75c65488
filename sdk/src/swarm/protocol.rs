//! The shard stream: one WebSocket per pipeline hop (`GET /v1/shard/stream` on a node
//! runner's API), JSON text messages for control and binary frames for hidden states.
//!
//! 1. The driver sends [`Control::Open`] with the blocks it wants run (within those the node
//!    loaded), and for a market query its [`Claim`] on the seat the stream serves; the node
//!    answers [`Control::Opened`] (or [`Control::Error`] and closes).
//! 2. Each step is a binary [`HiddenFrame`]: the rows at `position..position + rows`, which
//!    must continue the session's cache exactly. The node answers a frame with its blocks'
//!    output at the same positions: every row, or only the last when the step asks for it
//!    (the last hop, whose output only feeds the head).
//! 3. [`Control::Commit`] asks for the Merkle root over every position's output so far
//!    ([`nesa_market::activations`]); the node answers [`Control::Committed`].
//!
//! Values travel as little-endian f32, the engine's own format, so a pipeline's answer is
//! bit-identical to one node's. A busy node answers `Error { retry: true }` and keeps the
//! session; any other error ends it.

use serde::{Deserialize, Serialize};

use super::claim::Claim;

/// Path of the shard stream on a node runner's API.
pub const STREAM_PATH: &str = "/v1/shard/stream";
/// Version byte of every binary frame.
pub const FRAME_VERSION: u8 = 1;
/// Bytes before a frame's values: version, flags, two reserved, position, rows.
pub const FRAME_HEADER_BYTES: usize = 12;
const LAST_ROW_ONLY: u8 = 1;

/// A control message (a WebSocket text message).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    /// Driver → node: run blocks `layers[0]..layers[1]` for this session; a market
    /// pipeline's driver adds its signed [`Claim`] on the seat the stream serves.
    Open {
        layers: [usize; 2],
        #[serde(default, skip_serializing_if = "Option::is_none")]
        claim: Option<Claim>,
    },
    /// Node → driver: the session is open.
    Opened {
        layers: [usize; 2],
        hidden_size: usize,
        context_length: usize,
    },
    /// Driver → node: commit to the outputs so far.
    Commit,
    /// Node → driver: the Merkle root over `positions` output rows (hex).
    Committed {
        positions: usize,
        activations_root: String,
    },
    /// Node → driver: the step or the session failed; with `retry`, the session is still
    /// open and the same step may be sent again.
    Error {
        message: String,
        #[serde(default)]
        retry: bool,
    },
}

/// Hidden states at `position..position + rows` (a WebSocket binary message).
#[derive(Clone, Debug, PartialEq)]
pub struct HiddenFrame {
    /// Position of the first row.
    pub position: u32,
    /// In a step: answer only the last row's output. In an answer: echoed.
    pub last_row_only: bool,
    /// `rows × hidden_size` values, row-major.
    pub values: Vec<f32>,
}

/// A binary frame that is not a [`HiddenFrame`] of the session's width.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is shorter than its {FRAME_HEADER_BYTES}-byte header")]
    Short(usize),
    #[error("frame version {0} is not {FRAME_VERSION}")]
    Version(u8),
    #[error("frame holds no rows")]
    Empty,
    #[error("frame says {rows} rows of {width} values ({expected} bytes after the header) but carries {got}")]
    Length {
        rows: u32,
        width: usize,
        expected: usize,
        got: usize,
    },
}

impl HiddenFrame {
    /// Rows in the frame, for values of `width`.
    pub fn rows(&self, width: usize) -> usize {
        self.values.len() / width.max(1)
    }

    /// The frame's bytes.
    pub fn encode(&self, width: usize) -> Vec<u8> {
        Self::encode_rows(self.position, self.last_row_only, &self.values, width)
    }

    /// The bytes of a frame holding `values` (rows of `width`) at `position`, without
    /// building the frame first.
    pub fn encode_rows(
        position: u32,
        last_row_only: bool,
        values: &[f32],
        width: usize,
    ) -> Vec<u8> {
        let rows = (values.len() / width.max(1)) as u32;
        let mut bytes = Vec::with_capacity(FRAME_HEADER_BYTES + values.len() * 4);
        bytes.push(FRAME_VERSION);
        bytes.push(if last_row_only { LAST_ROW_ONLY } else { 0 });
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&position.to_le_bytes());
        bytes.extend_from_slice(&rows.to_le_bytes());
        for value in values {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes
    }

    /// Reads a frame of rows `width` values wide.
    pub fn decode(bytes: &[u8], width: usize) -> Result<Self, FrameError> {
        if bytes.len() < FRAME_HEADER_BYTES {
            return Err(FrameError::Short(bytes.len()));
        }
        if bytes[0] != FRAME_VERSION {
            return Err(FrameError::Version(bytes[0]));
        }
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let (position, rows) = (word(4), word(8));
        if rows == 0 {
            return Err(FrameError::Empty);
        }
        let body = &bytes[FRAME_HEADER_BYTES..];
        let expected = (rows as usize)
            .checked_mul(width)
            .and_then(|n| n.checked_mul(4));
        if expected != Some(body.len()) {
            return Err(FrameError::Length {
                rows,
                width,
                expected: expected.unwrap_or(usize::MAX),
                got: body.len(),
            });
        }
        Ok(HiddenFrame {
            position,
            last_row_only: bytes[1] & LAST_ROW_ONLY != 0,
            values: body
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
        })
    }
}

/// A row as the bytes its activation leaf hashes (little-endian f32).
pub fn row_bytes(row: &[f32]) -> Vec<u8> {
    row.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_bit_for_bit() {
        let frame = HiddenFrame {
            position: 7,
            last_row_only: true,
            values: vec![1.5, -0.0, f32::MIN_POSITIVE, 3.25e-9, 1e30, -2.0],
        };
        let bytes = frame.encode(3);
        assert_eq!(bytes.len(), FRAME_HEADER_BYTES + 6 * 4);
        let back = HiddenFrame::decode(&bytes, 3).unwrap();
        assert_eq!(back.rows(3), 2);
        let bits = |f: &HiddenFrame| f.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&frame));
        assert_eq!((back.position, back.last_row_only), (7, true));
    }

    #[test]
    fn malformed_frames_are_refused_with_the_reason() {
        let good = HiddenFrame {
            position: 0,
            last_row_only: false,
            values: vec![0.5; 8],
        }
        .encode(4);
        assert_eq!(
            HiddenFrame::decode(&good[..5], 4),
            Err(FrameError::Short(5))
        );
        let mut wrong_version = good.clone();
        wrong_version[0] = 9;
        assert_eq!(
            HiddenFrame::decode(&wrong_version, 4),
            Err(FrameError::Version(9))
        );
        assert!(matches!(
            HiddenFrame::decode(&good, 3),
            Err(FrameError::Length { .. })
        ));
        assert!(matches!(
            HiddenFrame::decode(&good[..good.len() - 1], 4),
            Err(FrameError::Length { .. })
        ));
        let mut huge = good.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            HiddenFrame::decode(&huge, usize::MAX / 2),
            Err(FrameError::Length { .. })
        ));
        let mut empty = good[..FRAME_HEADER_BYTES].to_vec();
        empty[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(HiddenFrame::decode(&empty, 4), Err(FrameError::Empty));
    }

    #[test]
    fn control_messages_read_as_tagged_json() {
        let open: Control = serde_json::from_str(r#"{"type":"open","layers":[0,15]}"#).unwrap();
        assert_eq!(
            open,
            Control::Open {
                layers: [0, 15],
                claim: None
            }
        );
        let error: Control =
            serde_json::from_str(r#"{"type":"error","message":"busy","retry":true}"#).unwrap();
        assert!(matches!(error, Control::Error { retry: true, .. }));
        assert!(
            serde_json::from_str::<Control>(r#"{"type":"open","layers":[0,1],"x":1}"#).is_err()
        );
    }
}
