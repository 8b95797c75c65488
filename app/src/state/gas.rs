//! Gas: a meter with a limit per transaction, and a state wrapper that charges for every
//! read and write with the Cosmos SDK's KVStore costs, so gas estimates carry over from
//! other Cosmos chains.

use std::cell::Cell;

use super::{Direction, Entry, StateError, StateRead, StateWrite};

/// An amount of gas.
pub type Gas = u64;

/// What state access costs (the Cosmos SDK's `KVGasConfig` defaults).
#[derive(Clone, Copy, Debug)]
pub struct GasCosts {
    pub has: Gas,
    pub read_flat: Gas,
    pub read_per_byte: Gas,
    pub write_flat: Gas,
    pub write_per_byte: Gas,
    pub delete: Gas,
    pub iter_next_flat: Gas,
    /// Per byte of the raw transaction.
    pub tx_size_per_byte: Gas,
    /// Per secp256k1 signature verified.
    pub sig_verify_secp256k1: Gas,
}

impl GasCosts {
    /// The Cosmos SDK defaults.
    pub const SDK: GasCosts = GasCosts {
        has: 1000,
        read_flat: 1000,
        read_per_byte: 3,
        write_flat: 2000,
        write_per_byte: 30,
        delete: 1000,
        iter_next_flat: 30,
        tx_size_per_byte: 10,
        sig_verify_secp256k1: 1000,
    };
}

/// Counts gas used against a limit. Interior mutability lets readers charge through `&self`.
#[derive(Debug)]
pub struct GasMeter {
    limit: Gas,
    used: Cell<Gas>,
}

impl GasMeter {
    /// A meter that fails once `limit` is exceeded.
    pub fn new(limit: Gas) -> Self {
        GasMeter {
            limit,
            used: Cell::new(0),
        }
    }

    /// A meter without a practical limit (simulation, genesis).
    pub fn unlimited() -> Self {
        GasMeter::new(Gas::MAX)
    }

    /// Charges `amount`; past the limit the usage is recorded and an out-of-gas error returned.
    pub fn consume(&self, amount: Gas, location: &'static str) -> Result<(), StateError> {
        let used = self.used.get().saturating_add(amount);
        self.used.set(used);
        if used > self.limit {
            return Err(StateError::OutOfGas {
                location,
                limit: self.limit,
                used,
            });
        }
        Ok(())
    }

    /// Gas used so far (may exceed the limit after an out-of-gas error).
    pub fn used(&self) -> Gas {
        self.used.get()
    }

    /// The limit.
    pub fn limit(&self) -> Gas {
        self.limit
    }
}

/// A state view that charges `meter` for each access.
pub struct Metered<'m, S> {
    inner: S,
    meter: &'m GasMeter,
}

impl<'m, S> Metered<'m, S> {
    /// Wraps `inner`, charging `meter`.
    pub fn new(inner: S, meter: &'m GasMeter) -> Self {
        Metered { inner, meter }
    }

    /// The wrapped view.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The meter being charged.
    pub fn meter(&self) -> &'m GasMeter {
        self.meter
    }
}

impl<S: StateRead> StateRead for Metered<'_, S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let costs = GasCosts::SDK;
        self.meter.consume(costs.read_flat, "ReadFlat")?;
        let value = self.inner.get(key)?;
        let bytes = (key.len() + value.as_ref().map_or(0, Vec::len)) as Gas;
        self.meter
            .consume(costs.read_per_byte * bytes, "ReadPerByte")?;
        Ok(value)
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Result<crate::state::Entries, StateError> {
        let costs = GasCosts::SDK;
        let entries = self.inner.range(start, end)?;
        for (key, value) in &entries {
            self.meter.consume(costs.iter_next_flat, "IterNextFlat")?;
            self.meter.consume(
                costs.read_per_byte * (key.len() + value.len()) as Gas,
                "ValuePerByte",
            )?;
        }
        Ok(entries)
    }

    /// The Cosmos SDK's gas-metered iterator cost of landing on one item: a flat cost per
    /// step and the item's bytes.
    fn seek(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        direction: Direction,
    ) -> Result<Option<Entry>, StateError> {
        let costs = GasCosts::SDK;
        self.meter.consume(costs.iter_next_flat, "IterNextFlat")?;
        let entry = self.inner.seek(start, end, direction)?;
        if let Some((key, value)) = &entry {
            self.meter.consume(
                costs.read_per_byte * (key.len() + value.len()) as Gas,
                "ValuePerByte",
            )?;
        }
        Ok(entry)
    }
}

impl<S: StateWrite> StateWrite for Metered<'_, S> {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StateError> {
        let costs = GasCosts::SDK;
        self.meter.consume(costs.write_flat, "WriteFlat")?;
        self.meter.consume(
            costs.write_per_byte * (key.len() + value.len()) as Gas,
            "WritePerByte",
        )?;
        self.inner.put(key, value)
    }

    fn delete(&mut self, key: Vec<u8>) -> Result<(), StateError> {
        self.meter.consume(GasCosts::SDK.delete, "Delete")?;
        self.inner.delete(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Overlay;

    #[test]
    fn writes_past_the_limit_fail_with_out_of_gas() {
        let meter = GasMeter::new(2500);
        let mut state = Metered::new(Overlay::new(()), &meter);
        state.put(b"k".to_vec(), b"v".to_vec()).unwrap();
        let err = state.put(b"k2".to_vec(), b"v".to_vec()).unwrap_err();
        assert!(
            matches!(err, StateError::OutOfGas { limit: 2500, .. }),
            "{err}"
        );
        assert!(meter.used() > meter.limit());
    }

    #[test]
    fn reads_charge_flat_and_per_byte() {
        let meter = GasMeter::unlimited();
        let state = Metered::new(Overlay::new(()), &meter);
        state.get(b"four").unwrap();
        assert_eq!(meter.used(), 1000 + 3 * 4);
    }
}
