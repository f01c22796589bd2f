// SPDX-License-Identifier: MIT
// program_path: the running program's own file, and the directory it was installed in.
#include <ringd/program_path.hpp>

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <string>

TEST_CASE("program_path is the file this process runs, by an absolute path") {
    auto path = ringd::program_path();
    REQUIRE(path.has_value());
    REQUIRE(path->starts_with("/"));
    CHECK(path->ends_with("/program_path_test"));
    struct ::stat named = {};
    struct ::stat running = {};
    REQUIRE(::stat(path->c_str(), &named) == 0);
    REQUIRE(::stat("/proc/self/exe", &running) == 0);
    CHECK(named.st_dev == running.st_dev);
    CHECK(named.st_ino == running.st_ino);
}

TEST_CASE("program_directory is the directory that holds the program's file") {
    const std::string dir = ringd::program_directory();
    CHECK(dir + "/program_path_test" == *ringd::program_path());
    struct stat st {};
    REQUIRE(::stat(dir.c_str(), &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
}
