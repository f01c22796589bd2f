// SPDX-License-Identifier: MIT
// The family's configuration: the keys of the receivers' limits and TLS settings, their
// defaults, and errors that name the file and the key.
#include "config.hpp"

#include "test_dir.hpp"

#include <catch2/catch.hpp>

#include <fstream>

using namespace std::chrono_literals;
using xfer::testing::temp_dir;

namespace {

// Loads a configuration made of `spool = ...` and `text`.
ringd::expected<xfer::config, std::string> load(const temp_dir& dir, const std::string& text) {
    std::string path = dir.str() + "/xfer.toml";
    std::ofstream(path, std::ios::trunc) << "spool = \"" << dir.str() << "/spool\"\n" << text;
    return xfer::load_config(path);
}

} // namespace

TEST_CASE("the receivers' limits have defaults and can be set", "[config]") {
    temp_dir dir;
    auto defaults = load(dir, "");
    REQUIRE(defaults);
    CHECK(defaults->max_connections == 4096);
    CHECK(defaults->min_rate == 1024);
    CHECK(defaults->idle_timeout == 60s);
    auto set = load(dir, "max_connections = 3\nmin_rate_bytes_per_s = 0\nidle_timeout_s = 0.25\n");
    REQUIRE(set);
    CHECK(set->max_connections == 3);
    CHECK(set->min_rate == 0);
    CHECK(set->idle_timeout == 250ms);
}

TEST_CASE("a duration below one millisecond is an error naming the key and the file, not 0 ms",
          "[config]") {
    temp_dir dir;
    std::string file = dir.str() + "/xfer.toml";
    auto tiny = load(dir, "idle_timeout_s = 0.0004\n");
    REQUIRE_FALSE(tiny);
    CHECK(tiny.error() == file + ": key 'idle_timeout_s': must be at least 0.001 (1 ms); 0.0004 "
                                 "is less");
    auto drain = load(dir, "drain_timeout_s = 1e-9\n");
    REQUIRE_FALSE(drain);
    CHECK(drain.error().starts_with(file + ": key 'drain_timeout_s': must be at least 0.001"));
    auto one_ms = load(dir, "idle_timeout_s = 0.001\n");
    REQUIRE(one_ms);
    CHECK(one_ms->idle_timeout == 1ms);
    CHECK_FALSE(load(dir, "idle_timeout_s = 0\n"));
    CHECK_FALSE(load(dir, "idle_timeout_s = 1e30\n"));
}

TEST_CASE("max_connections and min_rate_bytes_per_s refuse what they cannot mean", "[config]") {
    temp_dir dir;
    std::string file = dir.str() + "/xfer.toml";
    auto zero = load(dir, "max_connections = 0\n");
    REQUIRE_FALSE(zero);
    CHECK(zero.error() == file + ": key 'max_connections': must be at least 1");
    CHECK_FALSE(load(dir, "max_connections = 2000000\n"));
    CHECK_FALSE(load(dir, "min_rate_bytes_per_s = -1\n"));
    CHECK_FALSE(load(dir, "min_rate_bytes_per_s = \"fast\"\n"));
}

TEST_CASE("[tcpip_tls] ciphers, ciphersuites and groups default to AEAD with forward secrecy and "
          "are checked by OpenSSL at load",
          "[config]") {
    temp_dir dir;
    auto defaults = load(dir, "[tcpip_tls]\n");
    REQUIRE(defaults);
    CHECK(defaults->tcpip_tls->ciphers == "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL");
    CHECK(defaults->tcpip_tls->ciphersuites.find("TLS_AES_256_GCM_SHA384") != std::string::npos);
    CHECK(defaults->tcpip_tls->groups == "X25519:P-256:P-384");
    auto set = load(dir, "[tcpip_tls]\nciphers = \"ECDHE-ECDSA-AES256-GCM-SHA384\"\n"
                         "ciphersuites = \"TLS_AES_128_GCM_SHA256\"\ngroups = \"P-256\"\n");
    REQUIRE(set);
    CHECK(set->tcpip_tls->ciphers == "ECDHE-ECDSA-AES256-GCM-SHA384");
    CHECK(set->tcpip_tls->ciphersuites == "TLS_AES_128_GCM_SHA256");
    CHECK(set->tcpip_tls->groups == "P-256");
    std::string file = dir.str() + "/xfer.toml";
    auto bad = load(dir, "[tcpip_tls]\nciphers = \"NO-SUCH-CIPHER\"\n");
    REQUIRE_FALSE(bad);
    CHECK(bad.error() ==
          file + ": key 'tcpip_tls.ciphers': OpenSSL accepts none of 'NO-SUCH-CIPHER'");
    auto bad_groups = load(dir, "[tcpip_tls]\ngroups = \"P-999\"\n");
    REQUIRE_FALSE(bad_groups);
    CHECK(bad_groups.error().starts_with(file + ": key 'tcpip_tls.groups': "));
    CHECK_FALSE(load(dir, "[tcpip_tls]\nciphersuites = \"TLS_NOPE\"\n"));
}
