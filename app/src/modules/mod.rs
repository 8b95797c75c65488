//! Chain modules. Each owns its storage keys, its state access, its messages, its queries, its
//! genesis and its error type; another module reaches its state only through its public
//! functions. The app's message router (`crate::msg`) and query router (`crate::query`) sit on
//! top of them.

pub mod any;
pub mod auth;
pub mod bank;
mod query_error;
pub mod wasm;

pub use query_error::QueryError;
