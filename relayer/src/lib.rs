//! Nesa IBC relayer. Client, connection, channel and packet relaying are built in a later milestone; this crate holds its place in the workspace.
