# Mirrors the commands of README.md for people who use `just`; README commands work without it.

# Run the registry on 127.0.0.1:5000 with data in ./marina-data
serve:
    cargo run --release -- serve

# Run every test
test:
    cargo test

# Formatting and lints, as CI expects them
lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings

# Regenerate spec/openapi.json after an API change
openapi:
    MARINA_UPDATE_OPENAPI=1 cargo test --test integration openapi

# Review pending insta snapshots
snapshots:
    cargo insta review
