//! The consumer role (being built): fetching with read_uncommitted or read_committed.
