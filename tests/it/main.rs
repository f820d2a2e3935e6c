//! One integration-test binary (as in `just`): every case shares the lab
//! fixture in `support` and is compiled once.

mod support;

mod cli_input;
mod lab;

mod apply;
mod audit;
mod distros;
mod realworld;
mod rollout;
