//! The market's messages: defined in `nesa_market::market` so off-chain code can use them
//! without this crate.

pub use nesa_market::market::{
    Assignment, ConfigResponse, ExecuteMsg, InferenceQuery, InstantiateMsg, MarketParams,
    NodeOutcome, QueriesResponse, QueryId, QueryMsg, QueryPhase, QueryResponse, QueryStatus,
    QuoteResponse, Reveal, Sampling, Settlement, SlashFractions, SlashReason,
};
pub use nesa_market::upgrade::MigrateMsg;
