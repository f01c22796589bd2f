// SPDX-License-Identifier: MIT
// write_file_atomically: the new contents replace the old in one rename, a failure leaves the
// old file and no temporary behind, and a symlink planted at <path>.tmp is not written through.
#include <ringd/atomic_file.hpp>

#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace {

using ringd::testing::scratch_dir;

std::string contents(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

} // namespace

TEST_CASE("write_file_atomically replaces the contents and leaves no temporary") {
    scratch_dir dir;
    const std::string file = dir.path + "/status";
    for (auto durability : {ringd::file_durability::survives_power_loss,
                            ringd::file_durability::survives_process_crash}) {
        REQUIRE(ringd::write_file_atomically(file, "old\n", 0640, durability).has_value());
        REQUIRE(ringd::write_file_atomically(file, "new\n", 0640, durability).has_value());
        CHECK(contents(file) == "new\n");
        CHECK_FALSE(exists(file + ".tmp"));
    }
    struct stat st {};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
}

TEST_CASE("a symlink at the temporary's name is refused and the file is untouched") {
    scratch_dir dir;
    const std::string file = dir.path + "/table", victim = dir.path + "/victim";
    REQUIRE(ringd::write_file_atomically(file, "kept\n").has_value());
    REQUIRE(ringd::write_file_atomically(victim, "victim\n").has_value());
    REQUIRE(::symlink(victim.c_str(), (file + ".tmp").c_str()) == 0);
    auto written = ringd::write_file_atomically(file, "evil\n");
    REQUIRE_FALSE(written.has_value());
    CHECK(written.error() == std::errc::too_many_symbolic_link_levels);
    CHECK(contents(file) == "kept\n");
    CHECK(contents(victim) == "victim\n");
}

TEST_CASE("a write into a missing directory fails with its errno and creates nothing") {
    scratch_dir dir;
    auto written = ringd::write_file_atomically(dir.path + "/no/such/file", "x");
    REQUIRE_FALSE(written.has_value());
    CHECK(written.error() == std::errc::no_such_file_or_directory);
}
