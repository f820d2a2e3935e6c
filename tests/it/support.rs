//! Shared fixtures: the lab (a real fleet in network namespaces) and helpers to run the binary.
