// SPDX-License-Identifier: MIT
// Unit tests of the spool: temporary files, commit, idempotent retry, conflicts, no leftovers.
#include "spool.hpp"

#include "test_dir.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <sys/statvfs.h>

#include <fstream>
#include <sstream>

using namespace xfer;
using xfer::testing::files_in;
using xfer::testing::temp_dir;

namespace {

std::span<const std::byte> bytes_of(const std::string& s) {
    return std::as_bytes(std::span(s));
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct stored {
    commit_outcome outcome;
    std::string digest;
};

// Receives `content` (in two pieces) under `name` and commits it.
ringd::task<stored> receive(ringd::io_context& ctx, spool& s, std::string name,
                            std::string content) {
    auto file = s.begin(content.size());
    REQUIRE(file);
    auto half = content.size() / 2;
    auto first = co_await file->append(ctx, bytes_of(content).first(half));
    REQUIRE(first);
    auto second = co_await file->append(ctx, bytes_of(content).subspan(half));
    REQUIRE(second);
    std::vector<std::byte> scratch(4096);
    std::string digest;
    auto outcome = co_await file->commit(ctx, name, scratch, digest);
    REQUIRE(outcome);
    co_return stored{*outcome, digest};
}

} // namespace

TEST_CASE("spool::open creates in, tmp, out and sent", "[spool]") {
    temp_dir dir;
    auto s = spool::open(dir.str() + "/spool");
    CHECK(files_in(dir.path() / "spool") == std::vector<std::string>{"in", "out", "sent", "tmp"});
}

TEST_CASE("a committed file appears in in/ with its content and sha256", "[spool]") {
    temp_dir dir;
    auto s = spool::open(dir.str());
    ringd::io_context ctx;
    auto r = ringd::testing::run_bounded(ctx, receive(ctx, s, "abc.txt", "abc"));
    CHECK(r.outcome == commit_outcome::stored);
    CHECK(r.digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(read_file(dir.path() / "in" / "abc.txt") == "abc");
    CHECK(files_in(dir.path() / "tmp").empty());
}

TEST_CASE("a zero-byte file is stored", "[spool]") {
    temp_dir dir;
    auto s = spool::open(dir.str());
    ringd::io_context ctx;
    auto r = ringd::testing::run_bounded(ctx, receive(ctx, s, "empty", ""));
    CHECK(r.outcome == commit_outcome::stored);
    CHECK(r.digest == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(std::filesystem::file_size(dir.path() / "in" / "empty") == 0);
}

TEST_CASE("a file dropped before commit leaves nothing in in/ or tmp/", "[spool]") {
    temp_dir dir;
    auto s = spool::open(dir.str());
    ringd::io_context ctx;
    auto write_half = [](ringd::io_context& c, spool& sp) -> ringd::task<void> {
        auto file = sp.begin(1000);
        REQUIRE(file);
        std::string part(500, 'x');
        auto ok = co_await file->append(c, bytes_of(part));
        REQUIRE(ok);
        CHECK(file->written() == 500);
    }; // not capturing: safe as a coroutine
    ringd::testing::run_bounded(ctx, write_half(ctx, s));
    CHECK(files_in(dir.path() / "in").empty());
    CHECK(files_in(dir.path() / "tmp").empty());
}

TEST_CASE("the same name with the same content again is a duplicate, not a second file",
          "[spool]") {
    temp_dir dir;
    auto s = spool::open(dir.str());
    ringd::io_context ctx;
    auto first = ringd::testing::run_bounded(ctx, receive(ctx, s, "a", "hello"));
    auto again = ringd::testing::run_bounded(ctx, receive(ctx, s, "a", "hello"));
    CHECK(first.outcome == commit_outcome::stored);
    CHECK(again.outcome == commit_outcome::duplicate);
    CHECK(again.digest == first.digest);
    CHECK(files_in(dir.path() / "in") == std::vector<std::string>{"a"});
    CHECK(files_in(dir.path() / "tmp").empty());
}

TEST_CASE("the same name with other content is a conflict and the stored file stays", "[spool]") {
    temp_dir dir;
    auto s = spool::open(dir.str());
    ringd::io_context ctx;
    (void)ringd::testing::run_bounded(ctx, receive(ctx, s, "a", "hello"));
    auto other = ringd::testing::run_bounded(ctx, receive(ctx, s, "a", "HELLO"));
    CHECK(other.outcome == commit_outcome::conflict);
    CHECK(read_file(dir.path() / "in" / "a") == "hello");
    CHECK(files_in(dir.path() / "tmp").empty());
}

TEST_CASE("a file larger than the free space is refused with ENOSPC before any byte", "[spool]") {
    temp_dir dir;
    auto s = spool::open(dir.str());
    struct statvfs vfs {};
    REQUIRE(::statvfs(dir.str().c_str(), &vfs) == 0);
    std::uint64_t too_big = static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize + (1ull << 30);
    auto file = s.begin(too_big);
    REQUIRE_FALSE(file);
    INFO(file.error().message());
    CHECK((file.error() == std::errc::no_space_on_device ||
           file.error() == std::errc::file_too_large));
    CHECK(files_in(dir.path() / "tmp").empty());
}

TEST_CASE("stale named temporaries are removed, other files are not", "[spool]") {
    temp_dir dir;
    auto s = spool::open(dir.str());
    std::ofstream(dir.path() / "tmp" / ".xfer-tmp.123.0") << "partial";
    std::ofstream(dir.path() / "tmp" / "keep") << "not ours";
    CHECK(s.remove_stale_temporaries() == 1);
    CHECK(files_in(dir.path() / "tmp") == std::vector<std::string>{"keep"});
}

TEST_CASE("a begun file reserves no space until data arrives, then at most one step ahead",
          "[spool]") {
    temp_dir dir;
    auto s = spool::open(dir.str());
    auto file = s.begin(60'000'000);
    REQUIRE(file);
    // The unnamed temporary file, found among our descriptors.
    auto allocated = [&]() -> std::int64_t {
        for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
            std::error_code ec;
            auto target = std::filesystem::read_symlink(e.path(), ec).string();
            if (target.find(dir.str() + "/tmp/") == std::string::npos) continue;
            struct stat st {};
            if (::stat(e.path().c_str(), &st) == 0) return std::int64_t(st.st_blocks) * 512;
        }
        return -1;
    };
    CHECK(allocated() == 0);
    ringd::io_context ctx;
    std::string data(1000, 'd');
    auto appended =
        ringd::testing::run_bounded(ctx, file->append(ctx, std::as_bytes(std::span(data))));
    REQUIRE(appended);
    CHECK(allocated() >= std::int64_t(data.size()));
    CHECK(allocated() <= std::int64_t(incoming_file::reserve_step) + 65536);
}
