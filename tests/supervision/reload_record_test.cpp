// SPDX-License-Identifier: MIT
// The reload-status record's parser (detail/daemon_reload_status.hpp) on malformed input: every
// field is checked where it stands, nothing is read past it, and a record that is not whole and
// consistent is refused rather than half-read.
#include <ringd/detail/daemon_reload_status.hpp>

#include <catch2/catch.hpp>

#include <string>

using ringd::detail::format_reload_record;
using ringd::detail::parse_reload_record;
using ringd::detail::reload_record_size;

namespace {

// A record of the right size and frame (generation 7 at both ends) around `middle`.
std::string framed(const std::string& middle) {
    std::string text = format_reload_record({7, 1234, "ok", ""});
    std::string body = middle;
    body.resize(reload_record_size - 21 - 22, ' ');
    return text.substr(0, 21) + body + text.substr(reload_record_size - 22);
}

} // namespace

TEST_CASE("a reload record whose pid field runs to the end is refused") {
    // No space after the pid: the old parser searched past the field (npos) and returned
    // pid 1 with a state of digits.
    const std::string digits = std::string(reload_record_size - 21 - 22 - 1, '0') + "1";
    const std::string text = framed(digits);
    REQUIRE(text.size() == reload_record_size);
    CHECK_FALSE(parse_reload_record(text));
}

TEST_CASE("a reload record with a bad frame, pid or state is refused") {
    CHECK(parse_reload_record(framed("1234 ok")));
    CHECK(parse_reload_record(framed("1234 failed why it failed"))->reason == "why it failed");
    CHECK_FALSE(parse_reload_record(framed("12x4 ok")));   // the pid is not a number
    CHECK_FALSE(parse_reload_record(framed("0 ok")));      // no process has pid 0
    CHECK_FALSE(parse_reload_record(framed("-5 ok")));     // nor a negative one
    CHECK_FALSE(parse_reload_record(framed("1234 ")));     // no state
    CHECK_FALSE(parse_reload_record(framed("1234  x")));   // an empty state (found by fuzzing)
    CHECK_FALSE(parse_reload_record(framed("1234 o\nk"))); // two lines: not a record
    CHECK_FALSE(parse_reload_record(framed(" 1234 ok")));  // an empty pid field
    std::string text = format_reload_record({7, 1234, "ok", ""});
    std::string glued = text;
    glued[20] = '0'; // the generation runs into the pid
    CHECK_FALSE(parse_reload_record(glued));
    std::string short_gen = text;
    short_gen[0] = ' '; // the generation does not fill its 20 digits
    CHECK_FALSE(parse_reload_record(short_gen));
    CHECK_FALSE(parse_reload_record(text.substr(0, reload_record_size - 1)));
    CHECK_FALSE(parse_reload_record(std::string(reload_record_size, '\n')));
}
