//! Gas prices and size limits of the contract host: wasmd's values.

/// CosmWasm gas per unit of chain gas: wasmd's effective conversion. cosmwasm-vm targets 10^12
/// CosmWasm gas per second of execution (115 per Wasm operation), so one chain gas buys about
/// 0.14 µs of contract execution — in line with the SDK's storage costs (a 2,000-gas write
/// ≈ 200 µs of I/O was wasmd's original calibration).
pub const GAS_MULTIPLIER: u64 = 140_000;
/// Chain gas charged for loading a contract instance (wasmd's `DefaultInstanceCost`).
pub const INSTANCE_COST: u64 = 60_000;
/// Chain gas charged for loading a pinned contract instance (wasmd's discounted cost).
pub const PINNED_INSTANCE_COST: u64 = 1_000;
/// Chain gas charged per byte of uploaded wasm (wasmd's `DefaultCompileCost`).
pub const COMPILE_COST_PER_BYTE: u64 = 3;
/// Largest accepted wasm, uncompressed (wasmd's `MaxWasmSize`).
pub const MAX_WASM_BYTES: usize = 800 * 1024;
/// Deepest nesting of contract calls (submessages and queries).
pub const MAX_CALL_DEPTH: u32 = 10;
/// Chain gas available to a smart query served over ABCI (wasmd's `SmartQueryGasLimit`).
pub const QUERY_GAS_LIMIT: u64 = 3_000_000;
/// Iterators one contract call may keep open. Each costs a seek to create; the bound keeps a
/// call's host memory small whatever its gas limit.
pub const MAX_OPEN_ITERATORS: usize = 256;
/// Chain gas per attribute a contract emits (wasmd's `DefaultPerAttributeCost`).
pub const EVENT_PER_ATTRIBUTE_COST: u64 = 10;
/// Chain gas per custom event a contract emits (wasmd's `DefaultPerCustomEventCost`).
pub const CUSTOM_EVENT_COST: u64 = 20;
/// Chain gas per byte of attribute keys and values and of custom event types, and per byte of
/// response data (wasmd's `DefaultEventAttributeDataCost`; wasmd charges response data
/// nothing by default, but here it lands in the transaction result every node stores).
pub const EVENT_DATA_COST_PER_BYTE: u64 = 1;
/// Attribute bytes per contract response that cost nothing (wasmd's
/// `DefaultEventAttributeDataFreeTier`).
pub const EVENT_DATA_FREE_BYTES: u64 = 100;
