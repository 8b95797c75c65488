//! Upgrading a market contract: each records its cw2 name and version at instantiate, and its
//! `migrate` entry point refuses another contract's state and a downgrade, then records the
//! new version. Written once here so the three contracts follow the same rule.

use cosmwasm_schema::cw_serde;
use cosmwasm_std::{Response, StdError, Storage};

/// The message of every market contract's `migrate` entry point: nothing to configure, the
/// new code carries its own version.
#[cw_serde]
#[derive(Default)]
pub struct MigrateMsg {}

/// Why a migration was refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum UpgradeError {
    /// Reading or writing the stored version failed.
    #[error(transparent)]
    Std(#[from] StdError),
    /// The contract's state belongs to another contract.
    #[error("this code is {expected}, but the contract holds the state of {found}: migrate it to a {found} code instead")]
    WrongContract { expected: String, found: String },
    /// The new code is older than the state it would run on.
    #[error("{name} {stored} cannot be migrated down to {new}: store a code of version {stored} or newer")]
    Downgrade {
        name: String,
        stored: String,
        new: String,
    },
    /// A version is not `major.minor.patch`.
    #[error("version {0:?} is not a semantic version (major.minor.patch)")]
    InvalidVersion(String),
}

/// Records the contract's name and version (cw2), at instantiate.
pub fn record_version(
    storage: &mut dyn Storage,
    name: &str,
    version: &str,
) -> Result<(), StdError> {
    cw2::set_contract_version(storage, name, version)
}

/// The whole of a market contract's `migrate`: checks that the stored state is `name`'s and not
/// newer than `version`, records `version`, and answers with the versions it moved between.
pub fn migrate(
    storage: &mut dyn Storage,
    name: &str,
    version: &str,
) -> Result<Response, UpgradeError> {
    let stored = cw2::get_contract_version(storage)?;
    if stored.contract != name {
        return Err(UpgradeError::WrongContract {
            expected: name.to_string(),
            found: stored.contract,
        });
    }
    if semantic(version)? < semantic(&stored.version)? {
        return Err(UpgradeError::Downgrade {
            name: name.to_string(),
            stored: stored.version,
            new: version.to_string(),
        });
    }
    record_version(storage, name, version)?;
    Ok(Response::new()
        .add_attribute("action", "migrate")
        .add_attribute("contract", name)
        .add_attribute("from_version", stored.version)
        .add_attribute("to_version", version))
}

/// `major.minor.patch` as numbers (a pre-release or build suffix is ignored).
fn semantic(version: &str) -> Result<(u64, u64, u64), UpgradeError> {
    let invalid = || UpgradeError::InvalidVersion(version.to_string());
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core.split('.').map(|part| part.parse::<u64>());
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch)), None) => Ok((major, minor, patch)),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use cosmwasm_std::testing::MockStorage;

    use super::*;

    fn stored(name: &str, version: &str) -> MockStorage {
        let mut storage = MockStorage::new();
        record_version(&mut storage, name, version).unwrap();
        storage
    }

    #[test]
    fn a_newer_or_equal_version_of_the_same_contract_migrates_and_is_recorded() {
        let mut storage = stored("nesa-node-staking", "0.1.0");
        migrate(&mut storage, "nesa-node-staking", "0.1.0").unwrap();
        let response = migrate(&mut storage, "nesa-node-staking", "0.10.0").unwrap();
        assert!(response
            .attributes
            .iter()
            .any(|a| a.key == "from_version" && a.value == "0.1.0"));
        let now = cw2::get_contract_version(&storage).unwrap();
        assert_eq!(now.version, "0.10.0");
    }

    #[test]
    fn another_contracts_state_is_refused() {
        let mut storage = stored("nesa-kernel-registry", "0.1.0");
        let error = migrate(&mut storage, "nesa-inference-market", "0.2.0").unwrap_err();
        assert!(
            matches!(error, UpgradeError::WrongContract { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("nesa-kernel-registry"));
    }

    #[test]
    fn a_downgrade_is_refused_and_changes_nothing() {
        let mut storage = stored("nesa-inference-market", "1.2.0");
        let error = migrate(&mut storage, "nesa-inference-market", "1.1.9").unwrap_err();
        assert!(matches!(error, UpgradeError::Downgrade { .. }), "{error}");
        assert_eq!(
            cw2::get_contract_version(&storage).unwrap().version,
            "1.2.0"
        );
    }

    #[test]
    fn versions_compare_as_numbers_and_must_be_semantic() {
        assert!(semantic("0.10.0").unwrap() > semantic("0.9.7").unwrap());
        assert_eq!(semantic("1.2.3-rc.1").unwrap(), (1, 2, 3));
        assert!(semantic("1.2").is_err());
        assert!(semantic("one.two.three").is_err());
    }

    #[test]
    fn a_contract_without_a_recorded_version_cannot_migrate() {
        let mut storage = MockStorage::new();
        assert!(matches!(
            migrate(&mut storage, "nesa-node-staking", "0.1.0"),
            Err(UpgradeError::Std(_))
        ));
    }
}
