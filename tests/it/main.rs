//! One integration-test binary (as in `just`): every case shares the lab
//! fixture in `support` and is compiled once.

mod support;

mod cli_input;
mod lab;
mod predict;

mod apply;
mod audit;
mod corpus;
mod distros;
mod faults;
mod hardening;
mod layers;
mod operator;
mod realworld;
mod rollout;
mod scripts;
