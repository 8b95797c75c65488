//! Lifetime-erased access to the state of the contract call in progress.
//!
//! cosmwasm-vm owns its backend (`Storage`, `Querier`) for the duration of a call and requires
//! it to be `'static + Send`, while our state is a stack of borrowed overlays. A `StateHandle`
//! bridges the two: `scoped` lends the VM a handle to `&mut state` for exactly one closure and
//! revokes it when the closure returns (or unwinds). A handle used after revocation returns an
//! error instead of touching freed memory. Every access is one complete operation (get, put,
//! range, …), so no reference derived from the pointer outlives the operation that made it.

use std::sync::{Arc, Mutex};

use crate::state::{GasMeter, Metered, StateError, StateRead, StateWrite};

struct Lent {
    state: *mut (dyn StateWrite + 'static),
    meter: *const GasMeter,
}

// The pointers are only dereferenced on the thread that runs the VM call, inside the scope that
// lent them; the VM requires `Send` only because its backend type must be.
unsafe impl Send for Lent {}

/// A revocable handle to the state and gas meter of one contract call.
#[derive(Clone)]
pub struct StateHandle {
    slot: Arc<Mutex<Option<Lent>>>,
    writable: bool,
}

/// Errors using a handle.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error("state accessed after its contract call ended")]
    Revoked,
    #[error("state is read-only in queries")]
    ReadOnly,
    #[error(transparent)]
    State(#[from] StateError),
}

/// Lends `state` (charged to `meter`) to `body` through a handle that is revoked on return.
pub fn scoped<R>(
    state: &mut dyn StateWrite,
    meter: &GasMeter,
    body: impl FnOnce(StateHandle) -> R,
) -> R {
    struct Revoke(Arc<Mutex<Option<Lent>>>);
    impl Drop for Revoke {
        fn drop(&mut self) {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
    let raw: *mut (dyn StateWrite + '_) = state;
    // SAFETY: only the lifetime is erased; `Revoke` clears the slot before `state` can be used
    // again by the caller, and every dereference checks the slot first.
    let raw: *mut (dyn StateWrite + 'static) = unsafe { std::mem::transmute(raw) };
    let slot = Arc::new(Mutex::new(Some(Lent { state: raw, meter })));
    let _revoke = Revoke(slot.clone());
    body(StateHandle {
        slot,
        writable: true,
    })
}

impl StateHandle {
    /// A handle to the same state that refuses writes (for queries).
    pub fn read_only(&self) -> StateHandle {
        StateHandle {
            slot: self.slot.clone(),
            writable: false,
        }
    }

    fn lent(&self) -> Result<(*mut (dyn StateWrite + 'static), *const GasMeter), HandleError> {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let lent = slot.as_ref().ok_or(HandleError::Revoked)?;
        Ok((lent.state, lent.meter))
    }

    /// Runs one read against the metered state.
    pub fn read<R>(
        &self,
        op: impl FnOnce(&dyn StateRead) -> Result<R, StateError>,
    ) -> Result<R, HandleError> {
        let (state, meter) = self.lent()?;
        // SAFETY: the slot is filled, so the lending scope is live and the caller's borrow is
        // parked in `scoped`; the reference ends with this operation.
        let (state, meter) = unsafe { (&*state, &*meter) };
        Ok(op(&Metered::new(state, meter))?)
    }

    /// Runs one write against the metered state.
    pub fn write<R>(
        &self,
        op: impl FnOnce(&mut dyn StateWrite) -> Result<R, StateError>,
    ) -> Result<R, HandleError> {
        if !self.writable {
            return Err(HandleError::ReadOnly);
        }
        let (state, meter) = self.lent()?;
        // SAFETY: as in `read`; no other reference to the state exists during this operation.
        let (state, meter) = unsafe { (&mut *state, &*meter) };
        Ok(op(&mut Metered::new(state, meter))?)
    }

    /// Runs one read against the state without charging gas (the contract and code metadata
    /// the querier looks up).
    pub fn read_unmetered<R>(
        &self,
        op: impl FnOnce(&dyn StateRead) -> Result<R, StateError>,
    ) -> Result<R, HandleError> {
        let (state, _) = self.lent()?;
        // SAFETY: as in `read`.
        let state = unsafe { &*state };
        Ok(op(state)?)
    }

    /// Gas used so far on the lent meter.
    pub fn gas_used(&self) -> Result<u64, HandleError> {
        let (_, meter) = self.lent()?;
        // SAFETY: as in `read`.
        Ok(unsafe { &*meter }.used())
    }

    /// Runs `body` with the raw (unmetered) state and the meter, for nested contract calls
    /// from a query. The nested call lends the state onward through its own `scoped`.
    pub fn nested<R>(
        &self,
        body: impl FnOnce(&mut dyn StateWrite, &GasMeter) -> R,
    ) -> Result<R, HandleError> {
        let (state, meter) = self.lent()?;
        // SAFETY: as in `read`; the outer VM is suspended inside its host call while `body` runs.
        let (state, meter) = unsafe { (&mut *state, &*meter) };
        Ok(body(state, meter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Overlay;

    #[test]
    fn a_handle_reads_and_writes_while_lent_and_fails_after() {
        let mut state = Overlay::new(());
        let meter = GasMeter::unlimited();
        let kept = scoped(&mut state, &meter, |handle| {
            handle
                .write(|s| s.put(b"k".to_vec(), b"v".to_vec()))
                .unwrap();
            assert_eq!(handle.read(|s| s.get(b"k")).unwrap(), Some(b"v".to_vec()));
            assert!(matches!(
                handle.read_only().write(|s| s.delete(b"k".to_vec())),
                Err(HandleError::ReadOnly)
            ));
            handle
        });
        assert!(matches!(
            kept.read(|s| s.get(b"k")),
            Err(HandleError::Revoked)
        ));
        assert_eq!(state.get(b"k").unwrap(), Some(b"v".to_vec()));
        assert!(meter.used() > 0, "accesses through the handle are metered");
    }
}
