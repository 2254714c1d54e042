//! The quick tier: every integration test that needs nothing but Rust — no root, no namespaces,
//! no Go-built control plane, no PyPI or npm package. Plain `cargo test` builds and runs it as
//! one program, beside the crates' unit tests; `bash tests/quick-tier.sh` proves it runs as an
//! unprivileged user. One module per area, named as before (`cargo test --test quick proxy::`
//! runs one); the end-to-end tier is `tests/e2e.rs`. See docs/testing.md.

mod support;

mod bypass;
mod canary;
mod cli;
mod clouds;
mod clouds_emulated;
mod docs;
mod emulator;
mod fake_api;
mod front;
mod layers;
mod limits;
mod metrics;
mod netfilter_hop_limit;
mod policy;
mod properties;
mod proxy;
mod reload;
mod soak;
mod upstream_faults;
mod upstream_pool;
