# cicada — see README.md. Every target works on a fresh machine.
.PHONY: build test lint fmt demo bench release

build:
	cargo build --workspace --all-targets --locked

test:
	scripts/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

demo:
	scripts/demo.sh

bench:
	bench/run.sh

release:
	cargo build --release --locked --workspace
