// SPDX-License-Identifier: MIT
// rejected_tls_setting: a cipher, ciphersuite or group list that OpenSSL cannot use is named
// when the options are checked, before any context is made.
#include <ringd/tls.hpp>

#include <catch2/catch.hpp>

TEST_CASE("the default negotiation settings and empty ones are accepted") {
    CHECK_FALSE(ringd::rejected_tls_setting(ringd::tls_options{}).has_value());
    ringd::tls_options empty;
    empty.ciphers.clear();
    empty.ciphersuites.clear();
    empty.groups.clear();
    CHECK_FALSE(ringd::rejected_tls_setting(empty).has_value());
}

TEST_CASE("each unusable setting is named with its value, the first one in option order") {
    ringd::tls_options o;
    o.groups = "NO-SUCH-GROUP";
    auto bad = ringd::rejected_tls_setting(o);
    REQUIRE(bad.has_value());
    CHECK(bad->name == "groups");
    CHECK(bad->value == "NO-SUCH-GROUP");

    o.ciphersuites = "TLS_NO_SUCH_SUITE";
    bad = ringd::rejected_tls_setting(o);
    REQUIRE(bad.has_value());
    CHECK(bad->name == "ciphersuites");

    o.ciphers = "NO-SUCH-CIPHER";
    bad = ringd::rejected_tls_setting(o);
    REQUIRE(bad.has_value());
    CHECK(bad->name == "ciphers");
    CHECK(bad->value == "NO-SUCH-CIPHER");
}

TEST_CASE("a rejected setting leaves no OpenSSL error queued behind the check") {
    ringd::tls_options o;
    o.ciphers = "NO-SUCH-CIPHER";
    REQUIRE(ringd::rejected_tls_setting(o).has_value());
    CHECK(ERR_peek_error() == 0);
}
