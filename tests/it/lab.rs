//! The lab itself: isolation, cleanup, reachability with plain OpenSSH.
