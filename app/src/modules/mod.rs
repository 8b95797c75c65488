//! Chain modules. Each owns its storage keys, its state access and its queries; another module
//! reaches its state only through its public functions.

pub mod auth;
pub mod bank;
pub mod wasm;
