//! The chain as cosmwasm-vm sees it: address handling (`BackendApi`), the contract's own
//! prefixed storage with ordered iteration (`Storage`) and queries into bank and other
//! contracts (`Querier`). Storage gas is charged to the transaction's meter, as wasmd's
//! gas-metered KVStore does, and reported to the VM as externally used.

use std::collections::HashMap;
use std::sync::Arc;

use cosmwasm_std::{
    to_json_binary, AllBalanceResponse, BalanceResponse, BankQuery, Binary, BlockInfo,
    CodeInfoResponse, ContractInfoResponse, ContractResult, Empty, Order, QueryRequest, Record,
    SupplyResponse, SystemError, SystemResult, WasmQuery,
};
use cosmwasm_vm::{BackendApi, BackendError, BackendResult, GasInfo, Querier, Storage};

use nesa_types::Address;

use super::handle::{HandleError, StateHandle};
use super::limits::{GAS_MULTIPLIER, MAX_CALL_DEPTH, MAX_OPEN_ITERATORS};
use super::{keys, store, WasmError};
use crate::modules::bank;
use crate::state::{narrow_past, prefix_end, Direction, Entry, GasMeter, StateError, StateWrite};

/// wasmd's cost of turning a canonical address into bech32, in chain gas.
const HUMANIZE_COST: u64 = 5;
/// wasmd's cost of turning bech32 into a canonical address, in chain gas.
const CANONICALIZE_COST: u64 = 4;

fn backend_error(e: HandleError) -> BackendError {
    match e {
        HandleError::State(StateError::OutOfGas { .. }) => BackendError::out_of_gas(),
        other => BackendError::unknown(other.to_string()),
    }
}

/// Runs `op` and reports the chain gas it charged as externally used VM gas.
fn metered<T>(
    handle: &StateHandle,
    op: impl FnOnce() -> Result<T, HandleError>,
) -> BackendResult<T> {
    let before = handle.gas_used().unwrap_or(0);
    let result = op().map_err(backend_error);
    let after = handle.gas_used().unwrap_or(before);
    (
        result,
        GasInfo::with_externally_used(after.saturating_sub(before).saturating_mul(GAS_MULTIPLIER)),
    )
}

/// bech32 `nesa` addresses for contracts.
#[derive(Clone, Copy, Debug, Default)]
pub struct WasmApi;

impl BackendApi for WasmApi {
    fn addr_validate(&self, input: &str) -> BackendResult<()> {
        let gas = GasInfo::with_cost((HUMANIZE_COST + CANONICALIZE_COST) * GAS_MULTIPLIER);
        let result = match input.parse::<Address>() {
            // Only the canonical (lower-case) spelling is valid, as in wasmd.
            Ok(address) if address.to_string() == input => Ok(()),
            Ok(_) => Err(BackendError::user_err(format!(
                "address {input} is not normalized"
            ))),
            Err(e) => Err(BackendError::user_err(e.to_string())),
        };
        (result, gas)
    }

    fn addr_canonicalize(&self, human: &str) -> BackendResult<Vec<u8>> {
        let gas = GasInfo::with_cost(CANONICALIZE_COST * GAS_MULTIPLIER);
        let result = human
            .parse::<Address>()
            .map(|a| a.as_bytes().to_vec())
            .map_err(|e| BackendError::user_err(e.to_string()));
        (result, gas)
    }

    fn addr_humanize(&self, canonical: &[u8]) -> BackendResult<String> {
        let gas = GasInfo::with_cost(HUMANIZE_COST * GAS_MULTIPLIER);
        let result = Address::from_slice(canonical)
            .map(|a| a.to_string())
            .map_err(|e| BackendError::user_err(e.to_string()));
        (result, gas)
    }
}

/// A contract's own storage: its keys live under `wasm/store/<address>`.
pub struct ContractStorage {
    handle: StateHandle,
    prefix: Vec<u8>,
    iterators: HashMap<u32, Cursor>,
    next_iterator: u32,
}

/// An open iterator: the part of its range not yet returned and the item it stands on. It
/// reads one item per step from the state, as the Cosmos SDK's iterators do, so creating one
/// over a huge range costs one seek, not the range.
struct Cursor {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    direction: Direction,
    current: Option<Entry>,
}

impl ContractStorage {
    /// The storage of `contract` through `handle`.
    pub fn new(handle: StateHandle, contract: &Address) -> Self {
        ContractStorage {
            handle,
            prefix: keys::contract_store(contract),
            iterators: HashMap::new(),
            next_iterator: 1,
        }
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        [self.prefix.as_slice(), key].concat()
    }

    /// Moves `cursor` onto the next item of its range; the metered seek charges a step and
    /// the item's bytes.
    fn step(handle: &StateHandle, cursor: &mut Cursor) -> Result<(), HandleError> {
        let found =
            handle.read(|s| s.seek(&cursor.start, cursor.end.as_deref(), cursor.direction))?;
        if let Some((key, _)) = &found {
            narrow_past(key, cursor.direction, &mut cursor.start, &mut cursor.end);
        }
        cursor.current = found;
        Ok(())
    }
}

impl Storage for ContractStorage {
    fn get(&self, key: &[u8]) -> BackendResult<Option<Vec<u8>>> {
        let full = self.key(key);
        metered(&self.handle, || self.handle.read(|s| s.get(&full)))
    }

    fn scan(
        &mut self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        order: Order,
    ) -> BackendResult<u32> {
        if self.iterators.len() >= MAX_OPEN_ITERATORS {
            return (
                Err(BackendError::user_err(format!(
                    "a contract call may keep at most {MAX_OPEN_ITERATORS} iterators open"
                ))),
                GasInfo::free(),
            );
        }
        let mut cursor = Cursor {
            start: self.key(start.unwrap_or_default()),
            end: match end {
                Some(end) => Some(self.key(end)),
                None => prefix_end(&self.prefix),
            },
            direction: match order {
                Order::Ascending => Direction::Ascending,
                Order::Descending => Direction::Descending,
            },
            current: None,
        };
        let handle = self.handle.clone();
        let (result, gas) = metered(&handle, || Self::step(&handle, &mut cursor));
        let result = result.map(|()| {
            let id = self.next_iterator;
            self.next_iterator += 1;
            self.iterators.insert(id, cursor);
            id
        });
        (result, gas)
    }

    fn next(&mut self, iterator_id: u32) -> BackendResult<Option<Record>> {
        let Some(cursor) = self.iterators.get_mut(&iterator_id) else {
            return (
                Err(BackendError::iterator_does_not_exist(iterator_id)),
                GasInfo::free(),
            );
        };
        let Some((key, value)) = cursor.current.take() else {
            return (Ok(None), GasInfo::free());
        };
        let record = (key[self.prefix.len()..].to_vec(), value);
        let handle = self.handle.clone();
        let (result, gas) = metered(&handle, || Self::step(&handle, cursor));
        (result.map(|()| Some(record)), gas)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> BackendResult<()> {
        let full = self.key(key);
        metered(&self.handle, || {
            self.handle.write(|s| s.put(full, value.to_vec()))
        })
    }

    fn remove(&mut self, key: &[u8]) -> BackendResult<()> {
        let full = self.key(key);
        metered(&self.handle, || self.handle.write(|s| s.delete(full)))
    }
}

/// Smart queries into another contract from inside a contract call (the VM answers them).
pub trait SmartQuerier: Send + Sync {
    /// Runs `contract`'s `query` entry point over a read-only view of `state`, limited to
    /// `vm_gas_limit` VM gas; returns the answer and the VM gas used internally (which the
    /// calling contract's VM charges).
    #[allow(clippy::too_many_arguments)]
    fn query_nested(
        self: Arc<Self>,
        state: &mut dyn StateWrite,
        meter: &GasMeter,
        block: &BlockInfo,
        depth: u32,
        contract: &Address,
        msg: &[u8],
        vm_gas_limit: u64,
    ) -> Result<(Binary, u64), WasmError>;
}

/// Queries from a contract: bank balances and supply, other contracts' state and metadata.
pub struct ChainQuerier {
    handle: StateHandle,
    vm: Arc<dyn SmartQuerier>,
    block: BlockInfo,
    depth: u32,
}

impl ChainQuerier {
    /// A querier reading through `handle` (read-only) for a call at `depth`.
    pub fn new(
        handle: StateHandle,
        vm: Arc<dyn SmartQuerier>,
        block: BlockInfo,
        depth: u32,
    ) -> Self {
        ChainQuerier {
            handle: handle.read_only(),
            vm,
            block,
            depth,
        }
    }

    fn contract_address(
        &self,
        text: &str,
    ) -> Result<Address, SystemResult<ContractResult<Binary>>> {
        text.parse().map_err(|_| {
            SystemResult::Err(SystemError::NoSuchContract {
                addr: text.to_string(),
            })
        })
    }

    #[allow(deprecated)] // BankQuery::AllBalances: still what contracts send.
    fn answer(
        &self,
        request: QueryRequest<Empty>,
        gas_limit: u64,
    ) -> (SystemResult<ContractResult<Binary>>, u64) {
        let ok = |binary: cosmwasm_std::StdResult<Binary>| match binary {
            Ok(binary) => SystemResult::Ok(ContractResult::Ok(binary)),
            Err(e) => SystemResult::Ok(ContractResult::Err(e.to_string())),
        };
        let state_error = |e: HandleError| SystemResult::Ok(ContractResult::Err(e.to_string()));
        match request {
            QueryRequest::Bank(BankQuery::Balance { address, denom }) => {
                let Ok(address) = address.parse::<Address>() else {
                    return (
                        SystemResult::Ok(ContractResult::Err(format!("invalid address {address}"))),
                        0,
                    );
                };
                match self.handle.read(|s| bank::balance(&s, &address, &denom)) {
                    Ok(amount) => (
                        ok(to_json_binary(&BalanceResponse::new(
                            cosmwasm_std::Coin::new(amount, denom),
                        ))),
                        0,
                    ),
                    Err(e) => (state_error(e), 0),
                }
            }
            QueryRequest::Bank(BankQuery::AllBalances { address }) => {
                let Ok(address) = address.parse::<Address>() else {
                    return (
                        SystemResult::Ok(ContractResult::Err(format!("invalid address {address}"))),
                        0,
                    );
                };
                match self.handle.read(|s| bank::balances(&s, &address)) {
                    Ok(coins) => {
                        let coins = coins
                            .into_iter()
                            .map(|c| cosmwasm_std::Coin::new(c.amount, c.denom))
                            .collect();
                        (ok(to_json_binary(&AllBalanceResponse::new(coins))), 0)
                    }
                    Err(e) => (state_error(e), 0),
                }
            }
            QueryRequest::Bank(BankQuery::Supply { denom }) => {
                match self.handle.read(|s| bank::supply(&s, &denom)) {
                    Ok(amount) => (
                        ok(to_json_binary(&SupplyResponse::new(
                            cosmwasm_std::Coin::new(amount, denom),
                        ))),
                        0,
                    ),
                    Err(e) => (state_error(e), 0),
                }
            }
            QueryRequest::Wasm(WasmQuery::Raw { contract_addr, key }) => {
                let address = match self.contract_address(&contract_addr) {
                    Ok(a) => a,
                    Err(e) => return (e, 0),
                };
                let full = [keys::contract_store(&address).as_slice(), key.as_slice()].concat();
                match self.handle.read(|s| s.get(&full)) {
                    Ok(value) => (
                        SystemResult::Ok(ContractResult::Ok(Binary::from(
                            value.unwrap_or_default(),
                        ))),
                        0,
                    ),
                    Err(e) => (state_error(e), 0),
                }
            }
            QueryRequest::Wasm(WasmQuery::ContractInfo { contract_addr }) => {
                let address = match self.contract_address(&contract_addr) {
                    Ok(a) => a,
                    Err(e) => return (e, 0),
                };
                match self
                    .handle
                    .read_unmetered(|s| Ok(store::contract(&s, &address)))
                {
                    Ok(Ok(info)) => {
                        let response = ContractInfoResponse::new(
                            info.code_id,
                            cosmwasm_std::Addr::unchecked(info.creator),
                            info.admin.map(cosmwasm_std::Addr::unchecked),
                            false,
                            None,
                        );
                        (ok(to_json_binary(&response)), 0)
                    }
                    _ => (
                        SystemResult::Err(SystemError::NoSuchContract {
                            addr: contract_addr,
                        }),
                        0,
                    ),
                }
            }
            QueryRequest::Wasm(WasmQuery::CodeInfo { code_id }) => {
                match self.handle.read_unmetered(|s| Ok(store::code(&s, code_id))) {
                    Ok(Ok(info)) => {
                        let response = CodeInfoResponse::new(
                            code_id,
                            cosmwasm_std::Addr::unchecked(info.creator.clone()),
                            cosmwasm_std::Checksum::from(info.checksum_bytes()),
                        );
                        (ok(to_json_binary(&response)), 0)
                    }
                    _ => (SystemResult::Err(SystemError::NoSuchCode { code_id }), 0),
                }
            }
            QueryRequest::Wasm(WasmQuery::Smart { contract_addr, msg }) => {
                let address = match self.contract_address(&contract_addr) {
                    Ok(a) => a,
                    Err(e) => return (e, 0),
                };
                if self.depth >= MAX_CALL_DEPTH {
                    let error = format!("queries nest deeper than {MAX_CALL_DEPTH}");
                    return (SystemResult::Ok(ContractResult::Err(error)), 0);
                }
                let vm = self.vm.clone();
                let outcome = self.handle.nested(|state, meter| {
                    vm.query_nested(
                        state,
                        meter,
                        &self.block,
                        self.depth + 1,
                        &address,
                        &msg,
                        gas_limit,
                    )
                });
                match outcome {
                    Ok(Ok((binary, internal_gas))) => {
                        (SystemResult::Ok(ContractResult::Ok(binary)), internal_gas)
                    }
                    Ok(Err(WasmError::NoSuchContract(_))) => (
                        SystemResult::Err(SystemError::NoSuchContract {
                            addr: contract_addr,
                        }),
                        0,
                    ),
                    Ok(Err(e)) => (SystemResult::Ok(ContractResult::Err(e.to_string())), 0),
                    Err(e) => (state_error(e), 0),
                }
            }
            other => {
                let kind = match other {
                    QueryRequest::Custom(_) => "custom",
                    QueryRequest::Staking(_) => "staking",
                    _ => "this query",
                };
                (
                    SystemResult::Err(SystemError::UnsupportedRequest {
                        kind: kind.to_string(),
                    }),
                    0,
                )
            }
        }
    }
}

impl Querier for ChainQuerier {
    fn query_raw(
        &self,
        request: &[u8],
        gas_limit: u64,
    ) -> BackendResult<SystemResult<ContractResult<Binary>>> {
        let request: QueryRequest<Empty> = match cosmwasm_std::from_json(request) {
            Ok(request) => request,
            Err(e) => {
                let error = SystemError::InvalidRequest {
                    error: e.to_string(),
                    request: Binary::from(request),
                };
                return (Ok(SystemResult::Err(error)), GasInfo::free());
            }
        };
        let before = self.handle.gas_used().unwrap_or(0);
        let (answer, internal_gas) = self.answer(request, gas_limit);
        let after = self.handle.gas_used().unwrap_or(before);
        let external = after.saturating_sub(before).saturating_mul(GAS_MULTIPLIER);
        (Ok(answer), GasInfo::new(internal_gas, external))
    }
}
