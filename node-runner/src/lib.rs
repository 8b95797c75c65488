//! Nesa node runner. The inference engine, chain watcher and HTTP API are built in later milestones; this crate holds their place in the workspace.
