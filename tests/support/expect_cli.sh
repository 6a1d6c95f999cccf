#!/bin/sh
# usage: expect_cli.sh <status> <text> <command> [args...]
# Runs the command (e.g. an mpiexec line) and passes when it exits with <status> ("nonzero": any status but 0)
# and its output (stdout and stderr) contains <text> (a fixed string). For command-line checks: a bad value is
# refused with a non-zero status and a message naming it, --help exits 0 with the usage.
want="$1"
text="$2"
shift 2
out=$("$@" 2>&1)
rc=$?
echo "$out"
echo "exit status: $rc"
case "$want" in
nonzero) [ "$rc" -ne 0 ] || { echo "expected a non-zero exit status"; exit 1; } ;;
*) [ "$rc" -eq "$want" ] || { echo "expected exit status $want"; exit 1; } ;;
esac
echo "$out" | grep -qF -- "$text" || { echo "expected the output to contain: $text"; exit 1; }
