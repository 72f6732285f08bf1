//! End-to-end tests: the real `sfetl` binary against the simulator, checked against the
//! simulator's own data and the files on disk.

mod bulk;
mod check;
mod companies;
mod composite;
mod crash;
mod exit_codes;
mod extract;
mod incremental;
mod init;
mod lake;
mod library;
mod licenses;
mod model;
mod one_run;
mod pipeline_errors;
mod ranges;
mod real_orgs;
mod report;
mod resilience;
mod secrets;
mod security;
mod support;
