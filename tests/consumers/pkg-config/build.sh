#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds main.cpp and tls_main.cpp (../ in the repository) next to this script against an installed
# ringd with pkg-config alone, and runs them. ./run test-install copies them together into a scratch
# directory and runs this with PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR pointing into its install.
set -eu
cd "$(dirname "$0")"
# [pkg-config]
# ringd.pc carries no -std: C++20 or newer is yours to choose
c++ -std=c++20 main.cpp $(pkg-config --cflags --libs ringd) -o app
c++ -std=c++20 tls_main.cpp $(pkg-config --cflags --libs ringd-tls) -o tls_app
# [/pkg-config]
./app
./tls_app
