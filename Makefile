# verify: the read-only gate CI runs. fix: the only target that rewrites code.
.PHONY: verify fix test run

verify:
	bash .ci/run

fix:
	cargo fmt --all
	cargo clippy --workspace --all-targets --fix --allow-dirty --allow-staged

test:
	cargo test --workspace

run:
	cargo run --release --bin node
