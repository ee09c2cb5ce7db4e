#!/usr/bin/env bash
# josefk's public API as text (scripts/public_api.py reads the HTML that stable rustdoc writes:
# every item path, and each item's fields, variants, methods and trait impls as one line each).
# No nightly, no network. Default features, i.e. what a user gets: the doc(hidden)
# `unstable-internals` modules and methods do not appear.
# The auto-trait lines (Send, Sync, Unpin, ...) come from the toolchain's rustdoc: after a Rust
# update, regenerate and review the listing once.
#   scripts/public-api.sh          print the listing
#   scripts/public-api.sh --check  fail (showing the diff) when public-api.txt is out of date
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}
rm -rf "$target_dir/doc/josefk"
CARGO_PROFILE_DEV_DEBUG=0 cargo doc -q --no-deps -p josefk >&2
listing=$(python3 scripts/public_api.py "$target_dir/doc/josefk")
if [ "${1:-}" = --check ]; then
  if ! diff -u public-api.txt <(printf '%s\n' "$listing"); then
    echo "public API changed: review the diff above; if intended: scripts/public-api.sh > public-api.txt" >&2
    exit 1
  fi
  echo "public API unchanged ($(grep -c '^[a-z]* josefk::[^:]*\(::[^:]*\)*$' public-api.txt) items)"
else
  printf '%s\n' "$listing"
fi
