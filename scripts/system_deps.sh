#!/usr/bin/env bash
# Install the Debian packages proving needs, only where they are missing.
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)    # Spark's local mode
command -v chromium >/dev/null 2>&1 || need+=(chromium)            # report tests in a real browser
command -v wrk >/dev/null 2>&1 || need+=(wrk)                      # benchmarks/gateway_overhead.py
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)            # benchmarks/gateway_instructions.py
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
