//! The embedded CosmWasm VM: a module cache (code compiles once; genesis codes are pinned in
//! memory), instance creation with a gas limit derived from the transaction's remaining gas,
//! and the entry-point calls. Gas conversion and costs are wasmd's.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use cosmwasm_std::{
    Addr, Binary, BlockInfo, Checksum, ContractResult, Env, MessageInfo, Reply, Response,
    TransactionInfo,
};
use cosmwasm_vm::{
    call_execute, call_instantiate, call_migrate, call_query, call_reply, Backend, Cache,
    CacheOptions, Instance, InstanceOptions, Size, VmError, VmResult,
};

use super::backend::{ChainQuerier, ContractStorage, SmartQuerier, WasmApi};
use super::handle::scoped;
use super::limits::{GAS_MULTIPLIER, INSTANCE_COST, MAX_CALL_DEPTH, PINNED_INSTANCE_COST};
use super::{store, EntryPoint, WasmError};
use crate::state::{GasMeter, StateWrite};
use nesa_types::Address;

/// What the chain offers contracts: contracts requiring more are rejected at upload. Up to
/// `cosmwasm_2_1` (the BLS12-381 and secp256r1 host functions, which the VM implements); the
/// queries and messages of modules this chain does not run (distribution, staking, IBC)
/// fail with a clear error when called, as in a wasmd chain without those modules.
const CAPABILITIES: &[&str] = &[
    "iterator",
    "cosmwasm_1_1",
    "cosmwasm_1_2",
    "cosmwasm_1_3",
    "cosmwasm_1_4",
    "cosmwasm_2_0",
    "cosmwasm_2_1",
];
/// In-memory module cache size.
const MEMORY_CACHE_BYTES: usize = 128 * 1024 * 1024;
/// Memory limit of one contract instance.
const INSTANCE_MEMORY_BYTES: usize = 32 * 1024 * 1024;

type VmCache = Cache<WasmApi, ContractStorage, ChainQuerier>;

/// A state-changing entry point and its arguments.
pub enum Entry<'a> {
    Instantiate {
        info: &'a MessageInfo,
        msg: &'a [u8],
    },
    Execute {
        info: &'a MessageInfo,
        msg: &'a [u8],
    },
    /// Of the contract's new code.
    Migrate {
        msg: &'a [u8],
    },
    Reply(&'a Reply),
}

impl Entry<'_> {
    fn point(&self) -> EntryPoint {
        match self {
            Entry::Instantiate { .. } => EntryPoint::Instantiate,
            Entry::Execute { .. } => EntryPoint::Execute,
            Entry::Migrate { .. } => EntryPoint::Migrate,
            Entry::Reply(_) => EntryPoint::Reply,
        }
    }
}

/// Where and when a contract call happens.
#[derive(Clone, Debug)]
pub struct CallSite {
    pub block: BlockInfo,
    pub tx_index: Option<u32>,
    pub depth: u32,
    /// A gas estimate: nothing outside the state overlay (the module cache) may change.
    pub simulation: bool,
}

impl CallSite {
    /// The same site one call deeper.
    pub fn deeper(&self) -> Result<CallSite, WasmError> {
        if self.depth + 1 >= MAX_CALL_DEPTH {
            return Err(WasmError::Limit(format!(
                "contract calls nest deeper than {MAX_CALL_DEPTH}"
            )));
        }
        Ok(CallSite {
            depth: self.depth + 1,
            ..self.clone()
        })
    }
}

/// The VM shared by every block, query and simulation.
pub struct WasmVm {
    cache: VmCache,
    pinned: std::sync::Mutex<HashSet<[u8; 32]>>,
}

impl std::fmt::Debug for WasmVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmVm")
            .field("pinned", &self.pinned.lock().map(|p| p.len()).unwrap_or(0))
            .finish()
    }
}

fn vm_error(e: VmError) -> WasmError {
    match e {
        VmError::GasDepletion { .. } => WasmError::OutOfGas("contract ran out of gas".into()),
        other => WasmError::Vm(other.to_string()),
    }
}

impl WasmVm {
    /// Opens the module cache in `dir` (compiled modules persist there across restarts).
    pub fn open(dir: &Path) -> Result<Arc<Self>, WasmError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| WasmError::Vm(format!("cache dir {}: {e}", dir.display())))?;
        let options = CacheOptions::new(
            dir,
            CAPABILITIES
                .iter()
                .map(|c| c.to_string())
                .collect::<HashSet<_>>(),
            Size::new(MEMORY_CACHE_BYTES),
            Size::new(INSTANCE_MEMORY_BYTES),
        );
        // SAFETY: the cache directory belongs to this node; cosmwasm-vm requires the caller to
        // guarantee that no other process writes compiled modules into it.
        let cache = unsafe { Cache::new(options) }.map_err(vm_error)?;
        Ok(Arc::new(WasmVm {
            cache,
            pinned: Default::default(),
        }))
    }

    /// Validates `wasm` as a contract this chain can run, without storing it.
    pub fn check(wasm: &[u8]) -> Result<(), WasmError> {
        let capabilities = CAPABILITIES.iter().map(|c| c.to_string()).collect();
        cosmwasm_vm::internals::check_wasm(
            wasm,
            &capabilities,
            &cosmwasm_vm::WasmLimits::default(),
            cosmwasm_vm::internals::Logger::Off,
        )
        .map_err(|e| WasmError::Create(e.to_string()))
    }

    /// The checksum `store` would give `wasm`, after the same checks, without compiling or
    /// caching it (gas estimates must not fill the module cache).
    pub fn checksum_checked(wasm: &[u8]) -> Result<[u8; 32], WasmError> {
        Self::check(wasm)?;
        Ok(*Checksum::generate(wasm).as_ref())
    }

    /// Checks, compiles and caches `wasm`; returns its checksum.
    pub fn store(&self, wasm: &[u8]) -> Result<[u8; 32], WasmError> {
        let checksum = self
            .cache
            .store_code(wasm, true, true)
            .map_err(|e| WasmError::Create(e.to_string()))?;
        Ok(*checksum.as_ref())
    }

    /// Makes sure the cache has code stored in state (after the cache directory was lost).
    pub fn ensure_cached(&self, checksum: &[u8; 32], wasm: &[u8]) -> Result<(), WasmError> {
        if self.cache.load_wasm(&Checksum::from(*checksum)).is_err() {
            self.cache.store_code(wasm, false, true).map_err(vm_error)?;
        }
        Ok(())
    }

    /// Keeps a module compiled in memory (genesis contracts, called in every query round).
    pub fn pin(&self, checksum: &[u8; 32]) -> Result<(), WasmError> {
        self.cache
            .pin(&Checksum::from(*checksum))
            .map_err(vm_error)?;
        self.pinned.lock().expect("pinned lock").insert(*checksum);
        Ok(())
    }

    /// Cache statistics (hits, misses) for metrics and benchmarks.
    pub fn stats(&self) -> cosmwasm_vm::Stats {
        self.cache.stats()
    }

    fn env(site: &CallSite, contract: &Address) -> Env {
        Env {
            block: site.block.clone(),
            transaction: site.tx_index.map(|index| TransactionInfo { index }),
            contract: cosmwasm_std::ContractInfo {
                address: Addr::unchecked(contract.to_string()),
            },
        }
    }

    /// Runs one entry point of `contract` over `state`, charging `meter`; returns what the
    /// entry point returned and the VM gas it used internally.
    #[allow(clippy::too_many_arguments)]
    fn run<T>(
        self: &Arc<Self>,
        state: &mut dyn StateWrite,
        meter: &GasMeter,
        site: &CallSite,
        contract: &Address,
        writable: bool,
        vm_gas_limit: Option<u64>,
        call: impl FnOnce(
            &mut Instance<WasmApi, ContractStorage, ChainQuerier>,
            &Env,
        ) -> VmResult<ContractResult<T>>,
    ) -> Result<(T, u64), WasmError> {
        let info = store::contract(state, contract)?;
        let code = store::code(state, info.code_id)?;
        let checksum = code.checksum_bytes();
        let pinned = self.pinned.lock().expect("pinned lock").contains(&checksum);
        meter.consume(
            if pinned {
                PINNED_INSTANCE_COST
            } else {
                INSTANCE_COST
            },
            "wasm instance",
        )?;
        let env = Self::env(site, contract);
        let outcome = scoped(state, meter, |handle| {
            let storage = if writable {
                handle.clone()
            } else {
                handle.read_only()
            };
            let backend = Backend {
                api: WasmApi,
                storage: ContractStorage::new(storage, contract),
                querier: ChainQuerier::new(
                    handle.clone(),
                    self.clone(),
                    site.block.clone(),
                    site.depth,
                ),
            };
            let remaining = meter
                .limit()
                .saturating_sub(meter.used())
                .saturating_mul(GAS_MULTIPLIER);
            let gas_limit = vm_gas_limit.map_or(remaining, |limit| limit.min(remaining));
            let mut instance = self
                .cache
                .get_instance(
                    &Checksum::from(checksum),
                    backend,
                    InstanceOptions { gas_limit },
                )
                .map_err(vm_error)?;
            let result = call(&mut instance, &env);
            let report = instance.create_gas_report();
            drop(instance);
            Ok::<_, WasmError>((result, report.used_internally, report.remaining == 0))
        })?;
        let (result, used_internally, exhausted) = outcome;
        // A nested query's VM gas is charged by the calling contract's VM instead.
        if vm_gas_limit.is_none() {
            meter.consume(used_internally.div_ceil(GAS_MULTIPLIER), "wasm execution")?;
        }
        // Gas that ran out inside a host call (storage, a nested query) surfaces from the VM as
        // a runtime error; the exhausted gas report says what it was.
        if exhausted && result.is_err() {
            return Err(WasmError::OutOfGas("contract ran out of gas".into()));
        }
        match result.map_err(vm_error)? {
            ContractResult::Ok(value) => Ok((value, used_internally)),
            ContractResult::Err(message) => Err(WasmError::Contract(message)),
        }
    }

    /// Calls a state-changing entry point of `contract`; contract and VM errors come back
    /// attributed to that entry point (wasmd's error codes).
    pub fn call(
        self: &Arc<Self>,
        state: &mut dyn StateWrite,
        meter: &GasMeter,
        site: &CallSite,
        contract: &Address,
        entry: Entry<'_>,
    ) -> Result<Response, WasmError> {
        let point = entry.point();
        self.run(
            state,
            meter,
            site,
            contract,
            true,
            None,
            |instance, env| match entry {
                Entry::Instantiate { info, msg } => call_instantiate(instance, env, info, msg),
                Entry::Execute { info, msg } => call_execute(instance, env, info, msg),
                Entry::Migrate { msg } => call_migrate(instance, env, msg),
                Entry::Reply(reply) => call_reply(instance, env, reply),
            },
        )
        .map(|(response, _)| response)
        .map_err(|e| e.in_entry_point(point))
    }

    /// `query` entry point, read-only.
    pub fn query(
        self: &Arc<Self>,
        state: &mut dyn StateWrite,
        meter: &GasMeter,
        site: &CallSite,
        contract: &Address,
        msg: &[u8],
    ) -> Result<Binary, WasmError> {
        self.run(
            state,
            meter,
            site,
            contract,
            false,
            None,
            |instance, env| call_query(instance, env, msg),
        )
        .map(|(binary, _)| binary)
    }
}

impl SmartQuerier for WasmVm {
    fn query_nested(
        self: Arc<Self>,
        state: &mut dyn StateWrite,
        meter: &GasMeter,
        block: &BlockInfo,
        depth: u32,
        contract: &Address,
        msg: &[u8],
        vm_gas_limit: u64,
    ) -> Result<(Binary, u64), WasmError> {
        let site = CallSite {
            block: block.clone(),
            tx_index: None,
            depth,
            simulation: false,
        };
        let mut view = crate::state::Overlay::new(&*state);
        self.run(
            &mut view,
            meter,
            &site,
            contract,
            false,
            Some(vm_gas_limit),
            |instance, env| call_query(instance, env, msg),
        )
    }
}
