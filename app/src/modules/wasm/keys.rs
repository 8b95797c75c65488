//! Storage keys of the wasm module (all under `wasm/`).

use nesa_types::Address;

/// Module prefix; `store/wasm/key` queries are relative to it.
pub const PREFIX: &[u8] = b"wasm/";
/// The next code id to hand out.
pub const NEXT_CODE_ID: &[u8] = b"wasm/next_code_id";
/// The global instance counter used in classic contract addresses.
pub const NEXT_INSTANCE_ID: &[u8] = b"wasm/next_instance_id";
/// Counts contract creations (classic and instantiate2) to order contracts by code.
pub const NEXT_CREATION: &[u8] = b"wasm/next_creation";
/// Prefix of code metadata.
pub const CODE_PREFIX: &[u8] = b"wasm/code/";

/// Metadata of code `id`.
pub fn code(id: u64) -> Vec<u8> {
    [CODE_PREFIX, &id.to_be_bytes()].concat()
}

/// The wasm bytes of code `id` (kept in state so any node can rebuild its module cache).
pub fn code_bytes(id: u64) -> Vec<u8> {
    [b"wasm/code_bytes/".as_slice(), &id.to_be_bytes()].concat()
}

/// Marker: code `id` is pinned in every node's memory cache.
pub fn pinned(id: u64) -> Vec<u8> {
    [b"wasm/pinned/".as_slice(), &id.to_be_bytes()].concat()
}

/// Metadata of the contract at `address`.
pub fn contract(address: &Address) -> Vec<u8> {
    [b"wasm/contract/".as_slice(), &address.length_prefixed()].concat()
}

/// Prefix of the contracts instantiated from code `code_id`, in creation order.
pub fn contracts_by_code_prefix(code_id: u64) -> Vec<u8> {
    [b"wasm/by_code/".as_slice(), &code_id.to_be_bytes()].concat()
}

/// Index entry: code `code_id`, instance `instance_id` → `address`.
pub fn contract_by_code(code_id: u64, instance_id: u64, address: &Address) -> Vec<u8> {
    [
        contracts_by_code_prefix(code_id).as_slice(),
        &instance_id.to_be_bytes(),
        address.as_bytes(),
    ]
    .concat()
}

/// Prefix of the contract's own key-value storage.
pub fn contract_store(address: &Address) -> Vec<u8> {
    [b"wasm/store/".as_slice(), &address.length_prefixed()].concat()
}
