//! The registry under cw-multi-test: registration, updates, forks, deprecation, ownership and
//! the paginated queries.

use cosmwasm_std::{coins, Addr, Empty, HexBinary, Uint128};
use cw_multi_test::{App, AppResponse, Contract, ContractWrapper, Executor};

use nesa_kernel_registry::contract::{execute, instantiate, query};
use nesa_kernel_registry::msg::{
    ConfigResponse, Encryption, ExecuteMsg, InstantiateMsg, Kernel, KernelFork, KernelStatus,
    KernelUpdate, KernelsResponse, NewKernel, QueryMsg, ShardRange,
};
use nesa_kernel_registry::ContractError;

fn registry_code() -> Box<dyn Contract<Empty>> {
    Box::new(ContractWrapper::new(execute, instantiate, query))
}

struct Registry {
    app: App,
    contract: Addr,
}

fn hash(byte: u8) -> HexBinary {
    HexBinary::from(vec![byte; 32])
}

fn new_kernel(name: &str) -> NewKernel {
    NewKernel {
        name: name.into(),
        weights_sha256: hash(1),
        tokenizer_sha256: hash(2),
        architecture: "llama".into(),
        layer_count: 30,
        vocab_size: 49_152,
        context_length: 8192,
        shard_layout: vec![
            ShardRange {
                start_layer: 0,
                end_layer: 15,
                sha256: hash(3),
            },
            ShardRange {
                start_layer: 15,
                end_layer: 30,
                sha256: hash(4),
            },
        ],
        encryption: Encryption::EeV1,
        price_per_input_token: Uint128::new(1),
        price_per_output_token: Uint128::new(2),
        min_redundancy: 3,
        description: "SmolLM2-135M-Instruct Q4_1".into(),
    }
}

fn empty_fork(parent: u64) -> KernelFork {
    KernelFork::of(parent)
}

impl Registry {
    fn new() -> Self {
        let rich = App::default().api().addr_make("alice");
        let mut app = App::new(|router, _api, storage| {
            router
                .bank
                .init_balance(storage, &rich, coins(1_000, "unes"))
                .unwrap();
        });
        let code_id = app.store_code(registry_code());
        let admin = app.api().addr_make("admin");
        let contract = app
            .instantiate_contract(code_id, admin, &InstantiateMsg {}, &[], "registry", None)
            .unwrap();
        Self { app, contract }
    }

    fn addr(&self, name: &str) -> Addr {
        self.app.api().addr_make(name)
    }

    fn execute(&mut self, sender: &str, msg: &ExecuteMsg) -> Result<AppResponse, ContractError> {
        let sender = self.addr(sender);
        self.app
            .execute_contract(sender, self.contract.clone(), msg, &[])
            .map_err(|e| e.downcast().unwrap())
    }

    fn register(&mut self, sender: &str, name: &str) -> u64 {
        let response = self
            .execute(sender, &ExecuteMsg::Register(new_kernel(name)))
            .unwrap();
        kernel_id_of(&response)
    }

    fn kernel(&self, id: u64) -> Kernel {
        self.app
            .wrap()
            .query_wasm_smart(&self.contract, &QueryMsg::Kernel { id })
            .unwrap()
    }

    fn list(&self, msg: &QueryMsg) -> Vec<u64> {
        let response: KernelsResponse = self
            .app
            .wrap()
            .query_wasm_smart(&self.contract, msg)
            .unwrap();
        response.kernels.iter().map(|k| k.id).collect()
    }

    fn count(&self) -> u64 {
        let config: ConfigResponse = self
            .app
            .wrap()
            .query_wasm_smart(&self.contract, &QueryMsg::Config {})
            .unwrap();
        config.kernel_count
    }
}

fn kernel_id_of(response: &AppResponse) -> u64 {
    response
        .events
        .iter()
        .flat_map(|e| &e.attributes)
        .find(|a| a.key == "kernel_id")
        .expect("a kernel_id attribute")
        .value
        .parse()
        .unwrap()
}

#[test]
fn a_registered_kernel_is_stored_as_version_one_of_its_name() {
    let mut registry = Registry::new();
    let response = registry
        .execute("alice", &ExecuteMsg::Register(new_kernel("smollm2")))
        .unwrap();
    let event = response
        .events
        .iter()
        .find(|e| e.ty == "wasm-kernel_registered")
        .expect("a wasm-kernel_registered event");
    assert!(event
        .attributes
        .iter()
        .any(|a| a.key == "version" && a.value == "1"));

    let kernel = registry.kernel(1);
    assert_eq!(kernel.owner, registry.addr("alice"));
    assert_eq!(
        (kernel.name.as_str(), kernel.version, kernel.parent),
        ("smollm2", 1, None)
    );
    assert_eq!(kernel.status, KernelStatus::Active);
    assert_eq!(kernel.encryption, Encryption::EeV1);
    assert_eq!(kernel.created_height, registry.app.block_info().height);
    assert_eq!(registry.count(), 1);
}

#[test]
fn a_taken_name_cannot_be_registered_again() {
    let mut registry = Registry::new();
    registry.register("alice", "smollm2");
    let err = registry
        .execute("bob", &ExecuteMsg::Register(new_kernel("smollm2")))
        .unwrap_err();
    assert_eq!(
        err,
        ContractError::NameTaken {
            name: "smollm2".into(),
            kernel_id: 1
        }
    );
}

#[test]
fn invalid_kernels_are_rejected_and_nothing_is_stored() {
    let mut registry = Registry::new();
    let mut kernel = new_kernel("broken");
    kernel.shard_layout.pop();
    let err = registry
        .execute("alice", &ExecuteMsg::Register(kernel))
        .unwrap_err();
    assert!(
        matches!(err, ContractError::InvalidShardLayout { .. }),
        "{err}"
    );
    assert_eq!(registry.count(), 0);
}

#[test]
fn a_kernel_records_its_vocabulary_and_context_and_forks_inherit_or_replace_them() {
    let mut registry = Registry::new();
    for (vocab_size, context_length, expected) in [
        (0, 8192, ContractError::InvalidVocabSize { vocab_size: 0 }),
        (
            1 << 25,
            8192,
            ContractError::InvalidVocabSize {
                vocab_size: 1 << 25,
            },
        ),
        (
            49_152,
            0,
            ContractError::InvalidContextLength { context_length: 0 },
        ),
        (
            49_152,
            u32::MAX,
            ContractError::InvalidContextLength {
                context_length: u32::MAX,
            },
        ),
    ] {
        let mut kernel = new_kernel("limits");
        kernel.vocab_size = vocab_size;
        kernel.context_length = context_length;
        let err = registry
            .execute("alice", &ExecuteMsg::Register(kernel))
            .unwrap_err();
        assert_eq!(err, expected);
        assert_eq!(registry.count(), 0);
    }

    let id = registry.register("alice", "limits");
    let kernel = registry.kernel(id);
    assert_eq!((kernel.vocab_size, kernel.context_length), (49_152, 8192));
    let inherited = kernel_id_of(
        &registry
            .execute("bob", &ExecuteMsg::Fork(empty_fork(id)))
            .unwrap(),
    );
    let inherited = registry.kernel(inherited);
    assert_eq!(
        (inherited.vocab_size, inherited.context_length),
        (49_152, 8192)
    );
    let replaced = kernel_id_of(
        &registry
            .execute(
                "bob",
                &ExecuteMsg::Fork(KernelFork {
                    vocab_size: Some(32_000),
                    context_length: Some(4096),
                    ..empty_fork(id)
                }),
            )
            .unwrap(),
    );
    let replaced = registry.kernel(replaced);
    assert_eq!(
        (replaced.vocab_size, replaced.context_length),
        (32_000, 4096)
    );
    let err = registry
        .execute(
            "bob",
            &ExecuteMsg::Fork(KernelFork {
                context_length: Some(0),
                ..empty_fork(id)
            }),
        )
        .unwrap_err();
    assert_eq!(
        err,
        ContractError::InvalidContextLength { context_length: 0 }
    );
}

#[test]
fn the_registry_takes_no_funds() {
    let mut registry = Registry::new();
    let alice = registry.addr("alice");
    let err = registry
        .app
        .execute_contract(
            alice,
            registry.contract.clone(),
            &ExecuteMsg::Register(new_kernel("paid")),
            &coins(5, "unes"),
        )
        .unwrap_err();
    assert!(matches!(err.downcast().unwrap(), ContractError::Payment(_)));
}

#[test]
fn the_owner_updates_prices_redundancy_and_description_only() {
    let mut registry = Registry::new();
    registry.register("alice", "smollm2");
    let update = KernelUpdate {
        kernel_id: 1,
        price_per_input_token: Some(Uint128::new(7)),
        price_per_output_token: None,
        min_redundancy: Some(5),
        description: Some("cheaper".into()),
    };
    let err = registry
        .execute("bob", &ExecuteMsg::Update(update.clone()))
        .unwrap_err();
    assert_eq!(
        err,
        ContractError::NotOwner {
            kernel_id: 1,
            owner: registry.addr("alice")
        }
    );
    registry
        .execute("alice", &ExecuteMsg::Update(update))
        .unwrap();
    let kernel = registry.kernel(1);
    assert_eq!(kernel.price_per_input_token, Uint128::new(7));
    assert_eq!(kernel.price_per_output_token, Uint128::new(2));
    assert_eq!(kernel.min_redundancy, 5);
    assert_eq!(kernel.description, "cheaper");
    assert_eq!(kernel.weights_sha256, hash(1));

    let bad = KernelUpdate {
        kernel_id: 1,
        price_per_input_token: None,
        price_per_output_token: None,
        min_redundancy: Some(0),
        description: None,
    };
    assert_eq!(
        registry
            .execute("alice", &ExecuteMsg::Update(bad))
            .unwrap_err(),
        ContractError::InvalidMinRedundancy { value: 0 }
    );
}

#[test]
fn anyone_may_fork_and_owns_the_next_version_of_the_name() {
    let mut registry = Registry::new();
    registry.register("alice", "smollm2");
    registry.register("alice", "other");
    let mut fork = empty_fork(1);
    fork.weights_sha256 = Some(hash(9));
    let response = registry.execute("bob", &ExecuteMsg::Fork(fork)).unwrap();
    assert!(response.events.iter().any(|e| e.ty == "wasm-kernel_forked"));
    let forked = registry.kernel(kernel_id_of(&response));
    assert_eq!(forked.id, 3);
    assert_eq!(forked.owner, registry.addr("bob"));
    assert_eq!(
        (forked.name.as_str(), forked.version, forked.parent),
        ("smollm2", 2, Some(1))
    );
    assert_eq!(forked.weights_sha256, hash(9));
    assert_eq!(
        forked.tokenizer_sha256,
        hash(2),
        "unchanged fields come from the parent"
    );
    assert_eq!(
        registry.kernel(1).weights_sha256,
        hash(1),
        "the parent is untouched"
    );

    // A fork of the fork (or of version 1 again) takes the name's highest version + 1.
    let response = registry
        .execute("carol", &ExecuteMsg::Fork(empty_fork(1)))
        .unwrap();
    assert_eq!(registry.kernel(kernel_id_of(&response)).version, 3);

    let versions = registry.list(&QueryMsg::Versions {
        name: "smollm2".into(),
        start_after: None,
        limit: None,
    });
    assert_eq!(versions, vec![1, 3, 4]);
    let later = registry.list(&QueryMsg::Versions {
        name: "smollm2".into(),
        start_after: Some(1),
        limit: Some(1),
    });
    assert_eq!(later, vec![3]);
}

#[test]
fn a_fork_that_changes_layers_must_bring_a_matching_shard_layout() {
    let mut registry = Registry::new();
    registry.register("alice", "smollm2");
    let mut fork = empty_fork(1);
    fork.layer_count = Some(32);
    let err = registry
        .execute("bob", &ExecuteMsg::Fork(fork.clone()))
        .unwrap_err();
    assert!(
        matches!(err, ContractError::InvalidShardLayout { .. }),
        "{err}"
    );
    fork.shard_layout = Some(vec![ShardRange {
        start_layer: 0,
        end_layer: 32,
        sha256: hash(5),
    }]);
    registry.execute("bob", &ExecuteMsg::Fork(fork)).unwrap();
    assert_eq!(registry.kernel(2).layer_count, 32);
}

#[test]
fn forking_an_unknown_kernel_is_rejected() {
    let mut registry = Registry::new();
    assert_eq!(
        registry
            .execute("bob", &ExecuteMsg::Fork(empty_fork(9)))
            .unwrap_err(),
        ContractError::KernelNotFound { id: 9 }
    );
}

#[test]
fn a_deprecated_kernel_stays_queryable_but_cannot_be_updated() {
    let mut registry = Registry::new();
    registry.register("alice", "smollm2");
    assert!(matches!(
        registry.execute("bob", &ExecuteMsg::Deprecate { kernel_id: 1 }),
        Err(ContractError::NotOwner { .. })
    ));
    let response = registry
        .execute("alice", &ExecuteMsg::Deprecate { kernel_id: 1 })
        .unwrap();
    assert!(response
        .events
        .iter()
        .any(|e| e.ty == "wasm-kernel_deprecated"));
    assert_eq!(registry.kernel(1).status, KernelStatus::Deprecated);
    assert_eq!(
        registry
            .execute("alice", &ExecuteMsg::Deprecate { kernel_id: 1 })
            .unwrap_err(),
        ContractError::Deprecated { kernel_id: 1 }
    );
    let update = KernelUpdate {
        kernel_id: 1,
        price_per_input_token: Some(Uint128::zero()),
        price_per_output_token: None,
        min_redundancy: None,
        description: None,
    };
    assert_eq!(
        registry
            .execute("alice", &ExecuteMsg::Update(update))
            .unwrap_err(),
        ContractError::Deprecated { kernel_id: 1 }
    );
    // Forking revives the line as a new, active version.
    registry
        .execute("alice", &ExecuteMsg::Fork(empty_fork(1)))
        .unwrap();
    assert_eq!(registry.kernel(2).status, KernelStatus::Active);
}

#[test]
fn ownership_moves_with_the_owner_index() {
    let mut registry = Registry::new();
    registry.register("alice", "a");
    registry.register("alice", "b");
    let bob = registry.addr("bob").to_string();
    let response = registry
        .execute(
            "alice",
            &ExecuteMsg::TransferOwnership {
                kernel_id: 1,
                new_owner: bob.clone(),
            },
        )
        .unwrap();
    assert!(response
        .events
        .iter()
        .any(|e| e.ty == "wasm-kernel_ownership_transferred"));
    let by_owner = |registry: &Registry, owner: &str| {
        registry.list(&QueryMsg::ByOwner {
            owner: registry.addr(owner).to_string(),
            start_after: None,
            limit: None,
        })
    };
    assert_eq!(by_owner(&registry, "alice"), vec![2]);
    assert_eq!(by_owner(&registry, "bob"), vec![1]);
    assert!(matches!(
        registry.execute(
            "alice",
            &ExecuteMsg::TransferOwnership {
                kernel_id: 1,
                new_owner: bob
            }
        ),
        Err(ContractError::NotOwner { .. })
    ));
}

#[test]
fn kernels_are_listed_in_id_order_page_by_page() {
    let mut registry = Registry::new();
    for i in 0..45 {
        registry.register("alice", &format!("kernel-{i}"));
    }
    let first = registry.list(&QueryMsg::Kernels {
        start_after: None,
        limit: None,
    });
    assert_eq!(first, (1..=10).collect::<Vec<_>>());
    let capped = registry.list(&QueryMsg::Kernels {
        start_after: Some(10),
        limit: Some(100),
    });
    assert_eq!(capped, (11..=40).collect::<Vec<_>>(), "at most 30 per page");
    let last = registry.list(&QueryMsg::Kernels {
        start_after: Some(43),
        limit: Some(5),
    });
    assert_eq!(last, vec![44, 45]);
}

#[test]
fn an_unknown_kernel_query_is_an_error() {
    let registry = Registry::new();
    let err = registry
        .app
        .wrap()
        .query_wasm_smart::<Kernel>(&registry.contract, &QueryMsg::Kernel { id: 4 })
        .unwrap_err();
    assert!(err.to_string().contains("kernel 4 not found"), "{err}");
}
