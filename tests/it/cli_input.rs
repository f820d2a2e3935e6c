//! Bad input exits 1 with file:line:column and contacts no host.
