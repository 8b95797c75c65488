//! `nesad`: the Nesa chain node — an ABCI 2.0 application over a Merkle state store, run
//! behind CometBFT or by its embedded single-validator block producer (`--solo`).

pub mod abci;
pub mod app;
pub mod cmd;
pub mod events;
pub mod genesis;
pub mod home;
pub mod modules;
pub mod msg;
pub mod query;
pub mod rpc;
pub mod solo;
pub mod state;
pub mod tx;

pub use app::{App, AppError, ChainConfig};
