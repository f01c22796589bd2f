// SPDX-License-Identifier: MIT
// raise_open_files_limit: the soft descriptor limit goes up to what is wanted, stops at the hard
// limit, and never goes down.
#include <ringd/open_files_limit.hpp>

#include <catch2/catch.hpp>

#include <sys/resource.h>

namespace {

rlimit current() {
    rlimit l{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &l) == 0);
    return l;
}

} // namespace

TEST_CASE("the soft limit is raised to what is wanted, within the hard limit") {
    rlimit l = current();
    if (l.rlim_max < 64) {
        WARN("hard RLIMIT_NOFILE below 64: nothing to raise");
        return;
    }
    l.rlim_cur = 32;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &l) == 0);
    auto raised = ringd::raise_open_files_limit(64);
    REQUIRE(raised.has_value());
    CHECK(*raised == 64);
    CHECK(current().rlim_cur == 64);
}

TEST_CASE("a wish above the hard limit stops at the hard limit and says so") {
    const rlimit l = current();
    if (l.rlim_max == RLIM_INFINITY) {
        WARN("no hard RLIMIT_NOFILE: nothing to stop at");
        return;
    }
    auto raised = ringd::raise_open_files_limit(l.rlim_max + 1000);
    REQUIRE(raised.has_value());
    CHECK(*raised == l.rlim_max);
    CHECK(current().rlim_cur == l.rlim_max);
}

TEST_CASE("a limit already above the wish is left as it is") {
    const rlim_t before = current().rlim_cur;
    auto raised = ringd::raise_open_files_limit(before > 8 ? before - 8 : before);
    REQUIRE(raised.has_value());
    CHECK(*raised == before);
    CHECK(current().rlim_cur == before);
}
