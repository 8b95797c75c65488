//! Typed reads and writes of codes and contracts.

use serde::{Deserialize, Serialize};

use super::keys;
use super::WasmError;
use crate::state::{StateError, StateRead, StateWrite};
use nesa_types::Address;

/// Metadata of stored code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeInfo {
    /// sha256 of the (uncompressed) wasm, hex.
    pub checksum: String,
    /// Who uploaded it.
    pub creator: String,
}

impl CodeInfo {
    /// The checksum as bytes.
    pub fn checksum_bytes(&self) -> [u8; 32] {
        hex::decode(&self.checksum)
            .ok()
            .and_then(|b| b.try_into().ok())
            .expect("stored checksums are 32-byte hex")
    }
}

/// Metadata of an instantiated contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractInfo {
    pub code_id: u64,
    pub creator: String,
    /// Who may migrate it; `None` makes it immutable.
    pub admin: Option<String>,
    pub label: String,
    /// Height and tx index of its instantiation.
    pub created_height: u64,
    pub created_tx_index: u64,
    /// Position in the global instance sequence.
    pub instance_id: u64,
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Storage(format!("wasm metadata: {e}")))
}

fn next_counter(
    state: &mut (impl StateWrite + ?Sized),
    key: &[u8],
    first: u64,
) -> Result<u64, StateError> {
    let current = match state.get(key)? {
        Some(bytes) => u64::from_be_bytes(
            bytes
                .try_into()
                .map_err(|_| StateError::Storage("bad counter".into()))?,
        ),
        None => first,
    };
    state.put(key.to_vec(), (current + 1).to_be_bytes().to_vec())?;
    Ok(current)
}

/// Allocates the next code id (ids start at 1, as in wasmd).
pub fn next_code_id(state: &mut (impl StateWrite + ?Sized)) -> Result<u64, StateError> {
    next_counter(state, keys::NEXT_CODE_ID, 1)
}

/// Allocates the next instance id (starting at 1, as in wasmd).
pub fn next_instance_id(state: &mut (impl StateWrite + ?Sized)) -> Result<u64, StateError> {
    next_counter(state, keys::NEXT_INSTANCE_ID, 1)
}

/// Allocates the next position in the global creation order (indexes contracts by code).
pub fn next_creation(state: &mut (impl StateWrite + ?Sized)) -> Result<u64, StateError> {
    next_counter(state, keys::NEXT_CREATION, 1)
}

/// Stores code metadata and bytes.
pub fn save_code(
    state: &mut (impl StateWrite + ?Sized),
    id: u64,
    info: &CodeInfo,
    wasm: &[u8],
) -> Result<(), StateError> {
    state.put(
        keys::code(id),
        serde_json::to_vec(info).expect("serialises"),
    )?;
    state.put(keys::code_bytes(id), wasm.to_vec())
}

/// Code metadata, or `NoSuchCode`.
pub fn code(state: &(impl StateRead + ?Sized), id: u64) -> Result<CodeInfo, WasmError> {
    let bytes = state
        .get(&keys::code(id))?
        .ok_or(WasmError::NoSuchCode(id))?;
    Ok(decode(&bytes)?)
}

/// The wasm bytes of code `id`.
pub fn code_bytes(state: &(impl StateRead + ?Sized), id: u64) -> Result<Vec<u8>, WasmError> {
    state
        .get(&keys::code_bytes(id))?
        .ok_or(WasmError::NoSuchCode(id))
}

/// Every stored code id with its metadata, ascending.
pub fn codes(state: &(impl StateRead + ?Sized)) -> Result<Vec<(u64, CodeInfo)>, StateError> {
    state
        .prefix(keys::CODE_PREFIX)?
        .into_iter()
        .map(|(key, value)| {
            let id = u64::from_be_bytes(
                key[keys::CODE_PREFIX.len()..]
                    .try_into()
                    .map_err(|_| StateError::Storage("bad code key".into()))?,
            );
            Ok((id, decode(&value)?))
        })
        .collect()
}

/// Marks code `id` as pinned (kept compiled in memory on every node).
pub fn mark_pinned(state: &mut (impl StateWrite + ?Sized), id: u64) -> Result<(), StateError> {
    state.put(keys::pinned(id), vec![])
}

/// Whether code `id` is pinned.
pub fn is_pinned(state: &(impl StateRead + ?Sized), id: u64) -> Result<bool, StateError> {
    Ok(state.get(&keys::pinned(id))?.is_some())
}

/// Stores contract metadata (and the by-code index on creation).
pub fn save_contract(
    state: &mut (impl StateWrite + ?Sized),
    address: &Address,
    info: &ContractInfo,
) -> Result<(), StateError> {
    state.put(
        keys::contract(address),
        serde_json::to_vec(info).expect("serialises"),
    )
}

/// Adds the contract to its code's index.
pub fn index_contract(
    state: &mut (impl StateWrite + ?Sized),
    address: &Address,
    info: &ContractInfo,
) -> Result<(), StateError> {
    state.put(
        keys::contract_by_code(info.code_id, info.instance_id, address),
        vec![],
    )
}

/// Removes the contract from its code's index (on migration to another code).
pub fn unindex_contract(
    state: &mut (impl StateWrite + ?Sized),
    address: &Address,
    info: &ContractInfo,
) -> Result<(), StateError> {
    state.delete(keys::contract_by_code(
        info.code_id,
        info.instance_id,
        address,
    ))
}

/// Contract metadata, or `NoSuchContract`.
pub fn contract(
    state: &(impl StateRead + ?Sized),
    address: &Address,
) -> Result<ContractInfo, WasmError> {
    let bytes = state
        .get(&keys::contract(address))?
        .ok_or_else(|| WasmError::NoSuchContract(address.to_string()))?;
    Ok(decode(&bytes)?)
}

/// True if a contract lives at `address`.
pub fn contract_exists(
    state: &(impl StateRead + ?Sized),
    address: &Address,
) -> Result<bool, StateError> {
    Ok(state.get(&keys::contract(address))?.is_some())
}

/// Contracts instantiated from `code_id`, in creation order.
pub fn contracts_by_code(
    state: &(impl StateRead + ?Sized),
    code_id: u64,
) -> Result<Vec<Address>, StateError> {
    let prefix = keys::contracts_by_code_prefix(code_id);
    state
        .prefix(&prefix)?
        .into_iter()
        .map(|(key, _)| {
            Address::from_slice(&key[prefix.len() + 8..])
                .map_err(|e| StateError::Storage(e.to_string()))
        })
        .collect()
}
