// SPDX-License-Identifier: MIT
// xfer/spool.hpp — where received files land: streamed into an unnamed temporary file in tmp/,
// fsync'ed, then linked into in/ under their name, then in/ fsync'ed. A file is visible in in/
// only complete and durable; a broken connection, an error or even kill -9 leaves nothing.
//
//   spool/in/        received files (complete, durable)
//   spool/tmp/       files being received (unnamed: O_TMPFILE; named only as a fallback)
//   spool/out/P/     files to send to partner P (xfersqd)
//   spool/sent/P/    files sent to P and confirmed
#pragma once

#include "sha256.hpp"

#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/result.hpp>
#include <ringd/task.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace xfer {

// How a commit ended.
enum class commit_outcome {
    stored,    // new file in in/
    duplicate, // in/ already had this name with the same content: nothing changed
    conflict,  // in/ has this name with other content: nothing changed
};

class incoming_file;

class spool {
public:
    // Opens the spool at `root`, creating root, in/, tmp/, out/ and sent/ as needed.
    // Throws std::system_error naming the step ("mkdir /var/spool/xfer/in: Permission denied").
    static spool open(const std::string& root);

    spool(spool&&) noexcept = default;
    spool& operator=(spool&&) noexcept = default;

    [[nodiscard]] const std::string& root() const noexcept { return root_; }
    [[nodiscard]] ringd::borrowed_fd in_dir() const noexcept { return in_; }
    [[nodiscard]] ringd::borrowed_fd tmp_dir() const noexcept { return tmp_; }

    // Starts a file of `size` bytes: an unnamed file in tmp/, refused at once when `size` is
    // above the free space now, so that a full disk is known before the first byte. Nothing is
    // reserved yet: append() reserves as data arrives, so an announced size that never comes
    // (a client that sends a header and then nothing) takes no space from anyone else.
    // Errors: ENOSPC (no space), EFBIG, or open's other errors.
    [[nodiscard]] ringd::result<incoming_file> begin(std::uint64_t size);

    // Removes leftovers of named temporary files (only the fallback path makes them) after a
    // crash. Call when no receiver runs (the master, before it starts children). Returns how
    // many were removed.
    std::size_t remove_stale_temporaries() noexcept;

private:
    spool(std::string root, ringd::unique_fd in, ringd::unique_fd tmp) noexcept
        : root_(std::move(root)), in_(std::move(in)), tmp_(std::move(tmp)) {}

    std::string root_;     // the spool directory
    ringd::unique_fd in_;  // in/, O_DIRECTORY: link target and fsync'ed after each link
    ringd::unique_fd tmp_; // tmp/, where temporary files are made
};

// A file being received. Move-only; destroying it before commit() leaves nothing behind.
class incoming_file {
public:
    incoming_file(incoming_file&& other) noexcept
        : spool_(other.spool_), fd_(std::move(other.fd_)),
          temp_name_(std::exchange(other.temp_name_, {})), hash_(std::move(other.hash_)),
          size_(other.size_), written_(other.written_), reserved_(other.reserved_) {}
    incoming_file& operator=(incoming_file&&) = delete;
    ~incoming_file() { discard(); }

    // Writes `data` at the end (all of it) and adds it to the digest. Space is reserved as the
    // data comes, at most reserve_step ahead of what arrived: the reservation per connection is
    // bounded by data in hand plus one step. Errors: write's, ENOSPC/EDQUOT from the reservation.
    ringd::task<ringd::result<void>> append(ringd::io_context& ctx,
                                            std::span<const std::byte> data);
    static constexpr std::uint64_t reserve_step = 1u << 20;

    // Makes the file durable under in/<name>: fsync, link (never replacing), fsync of in/. If the
    // name exists, compares contents (reading it through `scratch`; empty: a 64 KiB buffer of
    // its own for the comparison): same → duplicate, else conflict. sha256_hex receives the digest
    // of what was received. Errors: fsync's, link's, read's. Call once; afterwards the object is
    // empty.
    ringd::task<ringd::result<commit_outcome>> commit(ringd::io_context& ctx, std::string name,
                                                      std::span<std::byte> scratch,
                                                      std::string& sha256_hex);

    [[nodiscard]] std::uint64_t written() const noexcept { return written_; }

private:
    friend class spool;
    incoming_file(const spool& s, ringd::unique_fd fd, std::string temp_name, std::uint64_t size)
        : spool_(&s), fd_(std::move(fd)), temp_name_(std::move(temp_name)), size_(size) {}

    ringd::result<void> reserve(std::uint64_t end) noexcept;
    ringd::result<void> link_into_in(const std::string& name) noexcept;
    void discard() noexcept;

    const spool* spool_;         // outlives us
    ringd::unique_fd fd_;        // the temporary file, written through the ring
    std::string temp_name_;      // its name in tmp/ on the fallback path; empty when unnamed
    sha256 hash_;                // of everything appended
    std::uint64_t size_ = 0;     // announced: reservations never go beyond it
    std::uint64_t written_ = 0;  // bytes appended
    std::uint64_t reserved_ = 0; // bytes [0, reserved_) are allocated on disk
};

namespace detail {
// Whether the file system of `fd` has `bytes` free for unprivileged users (f_bavail): root's
// writes could otherwise take the reserved blocks too. Unknown (fstatvfs fails): yes.
inline bool has_room(ringd::borrowed_fd fd, std::uint64_t bytes) noexcept {
    struct statvfs vfs {};
    return ::fstatvfs(fd.get(), &vfs) != 0 ||
           static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize >= bytes;
}
} // namespace detail

// The digest of an existing file, read through the ring in `scratch`-sized pieces.
ringd::task<ringd::result<std::string>> sha256_of_file(ringd::io_context& ctx,
                                                       ringd::borrowed_fd dir, std::string name,
                                                       std::span<std::byte> scratch);

// =============================================================================================

namespace detail {

inline constexpr std::string_view temp_prefix = ".xfer-tmp.";

inline ringd::unique_fd open_dir(const std::string& path) {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) ringd::throw_errno(ec.value(), "mkdir " + path);
    ringd::unique_fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) ringd::throw_errno(errno, "open " + path);
    return fd;
}

} // namespace detail

inline spool spool::open(const std::string& root) {
    for (const char* sub : {"out", "sent"}) detail::open_dir(root + "/" + sub);
    auto in = detail::open_dir(root + "/in");
    auto tmp = detail::open_dir(root + "/tmp");
    return spool(root, std::move(in), std::move(tmp));
}

inline ringd::result<incoming_file> spool::begin(std::uint64_t size) {
    constexpr mode_t mode = 0640;
    // Unnamed first: it has no name to leave behind, whatever happens to this process.
    ringd::unique_fd fd(::openat(tmp_.get(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode));
    std::string temp_name;
    if (!fd && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        // The file system has no O_TMPFILE: a named file that discard() and the master clean up.
        static std::atomic<unsigned> counter{0};
        temp_name = std::string(detail::temp_prefix) + std::to_string(::getpid()) + "." +
                    std::to_string(counter.fetch_add(1));
        fd.reset(
            ::openat(tmp_.get(), temp_name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode));
    }
    if (!fd) return ringd::last_error();
    incoming_file file(*this, std::move(fd), std::move(temp_name), size); // removes a named one
    if (size > static_cast<std::uint64_t>(INT64_MAX)) return ringd::errno_error(EFBIG);
    // Free space for unprivileged users: a file that cannot fit now is refused before any data.
    if (!detail::has_room(file.fd_, size)) return ringd::errno_error(ENOSPC);
    return file;
}

inline std::size_t spool::remove_stale_temporaries() noexcept {
    int dup = ::fcntl(tmp_.get(), F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return 0;
    DIR* dir = ::fdopendir(dup);
    if (dir == nullptr) {
        ::close(dup);
        return 0;
    }
    std::size_t removed = 0;
    while (dirent* e = ::readdir(dir)) {
        if (std::string_view(e->d_name).starts_with(detail::temp_prefix) &&
            ::unlinkat(tmp_.get(), e->d_name, 0) == 0)
            ++removed;
    }
    ::closedir(dir);
    return removed;
}

// Allocates [reserved_, end) and up to reserve_step more (never past the announced size), so
// that the file does not grow block by block. fallocate alone is not enough: as root it also
// takes the file system's reserved blocks, and ext4 keeps what it allocated before failing until
// the file is closed; so each step first checks the free space for unprivileged users.
inline ringd::result<void> incoming_file::reserve(std::uint64_t end) noexcept {
    if (end <= reserved_) return {};
    std::uint64_t to = std::min(std::max(end, reserved_ + reserve_step), std::max(size_, end));
    if (!detail::has_room(fd_, to - reserved_)) return ringd::errno_error(ENOSPC);
    if (::fallocate(fd_.get(), 0, static_cast<off_t>(reserved_),
                    static_cast<off_t>(to - reserved_)) != 0 &&
        errno != EOPNOTSUPP) // a file system without fallocate keeps the check alone
        return ringd::last_error();
    reserved_ = to;
    return {};
}

inline ringd::task<ringd::result<void>> incoming_file::append(ringd::io_context& ctx,
                                                              std::span<const std::byte> data) {
    auto reserved = reserve(written_ + data.size());
    if (!reserved) co_return ringd::error_of(reserved);
    hash_.update(data);
    while (!data.empty()) {
        auto n = co_await ringd::async_write(ctx, fd_, data);
        if (!n) co_return ringd::error_of(n);
        if (*n == 0) co_return ringd::errno_error(EIO);
        data = data.subspan(*n);
        written_ += *n;
    }
    co_return ringd::result<void>{};
}

inline ringd::result<void> incoming_file::link_into_in(const std::string& name) noexcept {
    if (temp_name_.empty()) {
        // linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; the /proc path does not.
        std::string self = "/proc/self/fd/" + std::to_string(fd_.get());
        if (::linkat(AT_FDCWD, self.c_str(), spool_->in_dir().get(), name.c_str(),
                     AT_SYMLINK_FOLLOW) != 0)
            return ringd::last_error();
        return {};
    }
    if (::linkat(spool_->tmp_dir().get(), temp_name_.c_str(), spool_->in_dir().get(), name.c_str(),
                 0) != 0)
        return ringd::last_error();
    return {};
}

inline ringd::task<ringd::result<commit_outcome>>
incoming_file::commit(ringd::io_context& ctx, std::string name, std::span<std::byte> scratch,
                      std::string& sha256_hex) {
    // [commit]
    sha256_hex = hash_.finish_hex();
    auto synced = co_await async_fsync(ctx, fd_);
    if (!synced) co_return ringd::error_of(synced);
    // link(2) never replaces: two receivers racing for one name cannot overwrite each other.
    auto linked = link_into_in(name);
    commit_outcome outcome = commit_outcome::stored;
    if (!linked && linked.error() == std::errc::file_exists) {
        std::vector<std::byte> own;
        if (scratch.empty()) {
            own.resize(64 * 1024);
            scratch = own;
        }
        auto existing = co_await sha256_of_file(ctx, spool_->in_dir(), name, scratch);
        if (!existing) co_return ringd::error_of(existing);
        outcome = *existing == sha256_hex ? commit_outcome::duplicate : commit_outcome::conflict;
    } else if (!linked) {
        co_return ringd::error_of(linked);
    }
    discard(); // the data now lives under in/<name> (or was not needed)
    if (outcome == commit_outcome::stored) {
        // The new directory entry is durable only once the directory is.
        auto dir_synced = co_await async_fsync(ctx, spool_->in_dir());
        if (!dir_synced) co_return ringd::error_of(dir_synced);
    }
    co_return outcome;
    // [/commit]
}

inline void incoming_file::discard() noexcept {
    if (!temp_name_.empty() && spool_ != nullptr)
        ::unlinkat(spool_->tmp_dir().get(), temp_name_.c_str(), 0);
    temp_name_.clear();
    fd_.reset(); // an unnamed file vanishes with its last descriptor
}

inline ringd::task<ringd::result<std::string>> sha256_of_file(ringd::io_context& ctx,
                                                              ringd::borrowed_fd dir,
                                                              std::string name,
                                                              std::span<std::byte> scratch) {
    ringd::unique_fd fd(::openat(dir.get(), name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) co_return ringd::last_error();
    sha256 hash;
    std::uint64_t offset = 0;
    for (;;) {
        auto n = co_await ringd::async_read(ctx, fd, scratch, offset);
        if (!n) co_return ringd::error_of(n);
        if (*n == 0) break;
        hash.update(scratch.first(*n));
        offset += *n;
    }
    co_return hash.finish_hex();
}

} // namespace xfer
