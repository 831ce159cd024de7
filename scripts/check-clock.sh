#!/usr/bin/env bash
# The sans-IO cores never read the clock: time is an argument (../shared/DESIGN.md). This fails
# when `Instant::now()` or `SystemTime::now()` appears in the SFU core or the TURN server core
# outside their tests and testkits (the IO shells, server/ and turn/src/net/, own the clock).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(find sfu/src turn/src -name '*.rs' ! -name testkit.rs ! -path 'turn/src/net/*')
# Everything from a file's `#[cfg(test)]` on is its tests.
awk '/^#\[cfg\(test\)\]/ { nextfile }
     /(Instant|SystemTime)::now\(/ { print FILENAME ":" FNR ": " $0; found = 1 }
     END { if (found) { print "the cores must take time as an argument" > "/dev/stderr"; exit 1 } }' $files
