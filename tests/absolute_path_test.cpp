// SPDX-License-Identifier: MIT
// absolute_path: a relative path made absolute against the working directory of the moment.
#include <ringd/absolute_path.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace {

// Runs in `dir`, then goes back.
struct working_directory {
    std::string previous;
    explicit working_directory(const std::string& dir) {
        char* cwd = ::getcwd(nullptr, 0);
        REQUIRE(cwd != nullptr);
        previous = cwd;
        std::free(cwd);
        REQUIRE(::chdir(dir.c_str()) == 0);
    }
    ~working_directory() { (void)::chdir(previous.c_str()); }
};

} // namespace

TEST_CASE("a relative path is put under the working directory, as written") {
    working_directory in("/tmp");
    CHECK(ringd::absolute_path("x.pid") == "/tmp/x.pid");
    CHECK(ringd::absolute_path("./run/../x.pid") == "/tmp/./run/../x.pid");
}

TEST_CASE("at the root the result has one slash") {
    working_directory in("/");
    CHECK(ringd::absolute_path("etc/ringd") == "/etc/ringd");
}

TEST_CASE("an absolute or empty path is returned unchanged") {
    working_directory in("/tmp");
    CHECK(ringd::absolute_path("/run/x.sock") == "/run/x.sock");
    CHECK(ringd::absolute_path("").empty());
}

TEST_CASE("without a working directory the path stays as given") {
    char name[] = "/tmp/ringd-absolute-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    working_directory in(name);
    REQUIRE(::rmdir(name) == 0); // getcwd now fails with ENOENT
    CHECK(ringd::absolute_path("x.pid") == "x.pid");
}
