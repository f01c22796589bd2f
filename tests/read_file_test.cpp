// SPDX-License-Identifier: MIT
// read_file: a file's whole contents, or the error of the step that failed.
#include <ringd/read_file.hpp>

#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace {

using ringd::testing::scratch_dir;

void write(const std::string& path, const std::string& text) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::close(fd);
}

} // namespace

TEST_CASE("a file is read whole, also past one read's buffer and with NUL bytes") {
    scratch_dir dir;
    std::string text(100'000, 'x');
    text[5] = '\0';
    text.back() = '\n';
    write(dir.path + "/f", text);
    auto got = ringd::read_file(dir.path + "/f");
    REQUIRE(got.has_value());
    CHECK(*got == text);
}

TEST_CASE("an empty file reads as an empty string") {
    scratch_dir dir;
    write(dir.path + "/empty", "");
    auto got = ringd::read_file(dir.path + "/empty");
    REQUIRE(got.has_value());
    CHECK(got->empty());
}

TEST_CASE("a missing file and a directory are errors that say why") {
    scratch_dir dir;
    auto missing = ringd::read_file(dir.path + "/nothing");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error() == std::errc::no_such_file_or_directory);
    auto directory = ringd::read_file(dir.path);
    REQUIRE_FALSE(directory.has_value());
    CHECK(directory.error() == std::errc::is_a_directory);
}
