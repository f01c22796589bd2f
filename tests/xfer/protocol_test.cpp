// SPDX-License-Identifier: MIT
// Unit tests of the xfer wire protocol parser: no sockets, no files.
#include "protocol.hpp"

#include <catch2/catch.hpp>

using namespace xfer;

TEST_CASE("a PUT line gives the name and the size", "[protocol]") {
    auto r = parse_request("PUT report-2024.01_a.csv 1234");
    REQUIRE(r);
    CHECK(r->kind == command::put);
    CHECK(r->name == "report-2024.01_a.csv");
    CHECK(r->size == 1234);
}

TEST_CASE("PING is a request, and a trailing carriage return is tolerated", "[protocol]") {
    CHECK(parse_request("PING")->kind == command::ping);
    CHECK(parse_request("PUT a 0\r")->size == 0);
}

TEST_CASE("names outside the allowed alphabet are refused with 400", "[protocol]") {
    for (const char* line : {"PUT ../etc/passwd 1", "PUT .hidden 1", "PUT a/b 1", "PUT . 1",
                             "PUT a\tb 1", "PUT  1", "PUT é 1"}) {
        auto r = parse_request(line);
        INFO(line);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == status::bad_request);
        CHECK(r.error().reason.find("bad name") != std::string::npos);
    }
}

TEST_CASE("a name of 255 characters is accepted and one of 256 is not", "[protocol]") {
    CHECK(parse_request("PUT " + std::string(255, 'x') + " 1"));
    CHECK_FALSE(parse_request("PUT " + std::string(256, 'x') + " 1"));
    CHECK(valid_name("a.b-c_D9"));
    CHECK_FALSE(valid_name(""));
}

TEST_CASE("sizes must be plain decimal numbers that fit 64 bits", "[protocol]") {
    CHECK(parse_request("PUT a 18446744073709551615")->size == UINT64_MAX);
    for (const char* line : {"PUT a -1", "PUT a +1", "PUT a 1x", "PUT a 18446744073709551616",
                             "PUT a ", "PUT a", "PUT a 1 2", "PUT a 0x10"}) {
        INFO(line);
        auto r = parse_request(line);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == status::bad_request);
    }
}

TEST_CASE("unknown requests are refused and quoted, without control characters", "[protocol]") {
    auto r = parse_request(std::string("GET /\x01\x02 HTTP/1.0"));
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == "unknown request 'GET /?? HTTP/1.0'");
    CHECK_FALSE(parse_request("put a 1")); // the verbs are upper case
}

TEST_CASE("replies are single lines that parse back", "[protocol]") {
    std::string digest(64, 'a');
    CHECK(ok_reply(5, digest) == "OK 5 " + digest + "\n");
    auto ok = parse_reply("OK 5 " + digest);
    REQUIRE(ok);
    CHECK(ok->ok);
    CHECK(ok->size == 5);
    CHECK(err_reply(status::conflict, "x\nexists") == "ERR 409 x exists\n");
    auto err = parse_reply("ERR 409 x exists");
    REQUIRE(err);
    CHECK_FALSE(err->ok);
    CHECK(err->code == 409);
    CHECK(err->reason == "x exists");
    CHECK_FALSE(parse_reply("OK 5 short"));
    CHECK_FALSE(parse_reply("HELLO"));
}
