//! The transaction pipeline: decode and check a Cosmos SDK `TxRaw` once into a `CheckedTx`,
//! then execute it (ante: signature, sequence, fee; then the messages, atomically).

mod ante;
mod decode;
mod error;
mod execute;
mod params;
mod sig_cache;

pub use decode::{decode_tx, CheckedTx, DecodeMode};
pub use error::{TxError, CODESPACE};
pub use execute::{execute_tx, ExecMode, TxEnv, TxOutcome};
pub use params::Params;
pub use sig_cache::SignatureCache;
