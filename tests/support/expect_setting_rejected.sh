#!/bin/sh
# usage: expect_setting_rejected.sh <coyote-settings> NAME=value
# Passes when `coyote-settings --check` refuses the value and its message names the variable.
tool="$1"
case="$2"
name="${case%%=*}"
if out=$(env "$case" "$tool" --check 2>&1); then
    echo "accepted: $case"
    exit 1
fi
echo "$out"
echo "$out" | grep -qF "$name="
