// SPDX-License-Identifier: MIT
// duration_text: a span as the two largest units a status column shows; seconds_text: a
// number of seconds as a message quotes it.
#include <ringd/duration_text.hpp>

#include <catch2/catch.hpp>

using std::chrono::seconds;

TEST_CASE("a span under a minute is whole seconds") {
    CHECK(ringd::duration_text(seconds(0)) == "0s");
    CHECK(ringd::duration_text(seconds(12)) == "12s");
    CHECK(ringd::duration_text(seconds(59)) == "59s");
}

TEST_CASE("longer spans show the two largest units, the second as two digits") {
    CHECK(ringd::duration_text(seconds(60)) == "1m00s");
    CHECK(ringd::duration_text(seconds(4 * 60 + 7)) == "4m07s");
    CHECK(ringd::duration_text(seconds(3600)) == "1h00m");
    CHECK(ringd::duration_text(seconds(2 * 3600 + 5 * 60 + 59)) == "2h05m");
    CHECK(ringd::duration_text(seconds(86400)) == "1d00h");
    CHECK(ringd::duration_text(seconds(3 * 86400 + 4 * 3600 + 3599)) == "3d04h");
    CHECK(ringd::duration_text(seconds(400 * 86400)) == "400d00h");
}

TEST_CASE("a negative span from a clock set back is shown as seconds, not hidden") {
    CHECK(ringd::duration_text(seconds(-5)) == "-5s");
}

TEST_CASE("a number of seconds reads as given: short, exact where it can be, exponent when huge") {
    CHECK(ringd::seconds_text(5) == "5");
    CHECK(ringd::seconds_text(0.25) == "0.25");
    CHECK(ringd::seconds_text(0.0004) == "0.0004");
    CHECK(ringd::seconds_text(90.5) == "90.5");
    CHECK(ringd::seconds_text(1e30) == "1e+30");
    CHECK(ringd::seconds_text(1.0 / 3) == "0.333333");
}
