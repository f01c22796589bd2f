// SPDX-License-Identifier: MIT
// Tests of the init.d-style start and stop order of service names.
#include <ringd/start_order.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

using namespace ringd::supervision;
using strings = std::vector<std::string>;

TEST_CASE("start order sorts S<nn> names by number, then by name, and unprefixed names last") {
    const strings names{"zebra", "S10web", "apache", "S2log", "S10db", "S99z", "S01net"};
    REQUIRE(start_order(names) ==
            strings{"S01net", "S2log", "S10db", "S10web", "S99z", "apache", "zebra"});
}

TEST_CASE("numbers compare as numbers, whatever their length and leading zeros") {
    REQUIRE(starts_before("S9a", "S10a"));
    REQUIRE_FALSE(starts_before("S10a", "S9a"));
    REQUIRE(starts_before("S007x", "S10x"));
    // Longer than any integer type: still compared by value, no overflow.
    REQUIRE(starts_before("S99999999999999999999999a", "S100000000000000000000000a"));
    // Same number and rest, different spelling: a total order falls back to the whole name.
    REQUIRE(starts_before("S010a", "S10a"));
    REQUIRE_FALSE(starts_before("S10a", "S010a"));
}

TEST_CASE("only a capital S followed by a digit starts a sequence") {
    for (std::string_view name : {"Sfoo", "s10x", "K10x", "S", "10x"}) {
        INFO(name);
        REQUIRE_FALSE(start_key_of(name).sequenced);
        REQUIRE(starts_before("S99zzz", name)); // every prefixed name comes first
    }
    const start_key k = start_key_of("S0042mail");
    REQUIRE(k.sequenced);
    REQUIRE(k.number == "42");
    REQUIRE(k.rest == "mail");
    REQUIRE(start_key_of("S00x").number.empty()); // S00 is number 0
    REQUIRE(starts_before("S00x", "S1x"));
}

TEST_CASE("stop order is the exact reverse of start order") {
    const strings names{"b", "S10x", "a", "S010x", "S2y", "Sfoo", "S10x-2", "K20z"};
    strings reversed = start_order(names);
    std::reverse(reversed.begin(), reversed.end());
    REQUIRE(stop_order(names) == reversed);
    REQUIRE(stop_order(names).front() == "b");
    REQUIRE(stop_order(names).back() == "S2y");
}

TEST_CASE("the order does not depend on the input order") {
    strings names{"S20b", "S3a", "x", "S20a", "S003c", "y", "S3"};
    const strings expected = start_order(names);
    std::sort(names.begin(), names.end());
    do {
        REQUIRE(start_order(names) == expected);
    } while (std::next_permutation(names.begin(), names.end()));
    REQUIRE(expected == strings{"S3", "S3a", "S003c", "S20a", "S20b", "x", "y"});
}

TEST_CASE("string views sort in place") {
    std::vector<std::string_view> names{"web", "S50db", "S05net"};
    sort_start_order(names);
    REQUIRE(names == std::vector<std::string_view>{"S05net", "S50db", "web"});
    sort_stop_order(names);
    REQUIRE(names == std::vector<std::string_view>{"web", "S50db", "S05net"});
}

TEST_CASE("K followed by a digit is a kill entry, parsed like S<nn>; Kfoo is an ordinary name") {
    const kill_key k = kill_key_of("K0020db");
    REQUIRE(k.sequenced);
    REQUIRE(k.number == "20");
    REQUIRE(k.rest == "db");
    REQUIRE(is_kill_entry("K20db"));
    REQUIRE(is_kill_entry("K0"));
    REQUIRE(kill_key_of("K00x").number.empty()); // K00 is number 0
    for (std::string_view name : {"Kfoo", "k20x", "K", "S20x", "20x", ""}) {
        INFO(name);
        REQUIRE_FALSE(is_kill_entry(name));
        REQUIRE(kill_key_of(name).rest == name);
    }
    // A kill entry is not a start entry: it starts (if anything) among the unsequenced names.
    REQUIRE_FALSE(start_key_of("K20db").sequenced);
}

TEST_CASE("numbers compare by value without overflow, leading zeros ignored") {
    REQUIRE(compare_numbers("9", "10") < 0);
    REQUIRE(compare_numbers("010", "10") == 0);
    REQUIRE(compare_numbers("", "0") == 0);
    REQUIRE(compare_numbers("000", "") == 0);
    REQUIRE(compare_numbers("100000000000000000000000", "99999999999999999999999") > 0);
    REQUIRE(compare_numbers("00099999999999999999999999", "100000000000000000000000") < 0);
}

TEST_CASE("kill order: K entries by number, then rest, then the rest in reverse start order") {
    strings names{"S10db", "apache", "K20web", "K2db", "S20web", "K10x", "K010x", "Kfoo", "K10a"};
    std::sort(names.begin(), names.end(), kills_before);
    REQUIRE(names == strings{"K2db", "K10a", "K010x", "K10x", "K20web", "apache", "Kfoo", "S20web",
                             "S10db"});
    // Huge numbers: by value, no overflow.
    REQUIRE(kills_before("K99999999999999999999999a", "K100000000000000000000000a"));
    REQUIRE_FALSE(kills_before("K100000000000000000000000a", "K99999999999999999999999a"));
    // A strict order: irreflexive, and without kill entries the reverse of start order.
    for (std::string_view name : {"K1a", "S1a", "x"}) REQUIRE_FALSE(kills_before(name, name));
    REQUIRE(kills_before("S20web", "S10db") == starts_before("S10db", "S20web"));
}

TEST_CASE("the kill order does not depend on the input order") {
    strings names{"K20b", "K3a", "x", "K003c", "S5y", "K3"};
    std::sort(names.begin(), names.end());
    strings expected;
    do {
        strings sorted = names;
        std::sort(sorted.begin(), sorted.end(), kills_before);
        if (expected.empty()) expected = sorted;
        REQUIRE(sorted == expected);
    } while (std::next_permutation(names.begin(), names.end()));
    REQUIRE(expected == strings{"K3", "K3a", "K003c", "K20b", "x", "S5y"});
}
