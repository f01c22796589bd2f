// SPDX-License-Identifier: MIT
// xfer/debug_collector.hpp — xferdebugd's state: the recent log records of every xfer process in
// a bounded in-memory ring, and the same records appended to a file that rotates by size.
#pragma once

#include <cstdio>
#include <deque>
#include <fstream>
#include <string>
#include <string_view>

namespace xfer {

class debug_collector {
public:
    // Keeps the last `capacity` records in memory; `file` grows up to `rotate_at` bytes, then
    // becomes file.1 (replacing the previous file.1) and a new file starts.
    debug_collector(std::string file, std::size_t capacity, std::uint64_t rotate_at)
        : path_(std::move(file)), capacity_(capacity), rotate_at_(rotate_at) {
        reopen();
    }

    void add(std::string_view record) {
        if (records_.size() == capacity_) records_.pop_front(); // the limit: oldest goes first
        records_.emplace_back(record);
        if (!out_) return;
        out_ << record << '\n';
        out_.flush();
        written_ += record.size() + 1;
        if (written_ >= rotate_at_) rotate();
    }

    // Writes every record held in memory to `path`; returns how many, or -1 if it cannot write.
    long dump(const std::string& path) const {
        std::ofstream out(path, std::ios::trunc);
        if (!out) return -1;
        for (const auto& r : records_) out << r << '\n';
        out.flush();
        return out ? static_cast<long>(records_.size()) : -1;
    }

    // After an outside rotation (SIGHUP), write to a fresh file at the same path.
    void reopen() {
        out_.close();
        out_.clear();
        out_.open(path_, std::ios::app);
        out_.seekp(0, std::ios::end);
        written_ = out_ ? static_cast<std::uint64_t>(out_.tellp()) : 0;
    }

    [[nodiscard]] std::size_t size() const noexcept { return records_.size(); }

private:
    void rotate() {
        out_.close();
        std::rename(path_.c_str(), (path_ + ".1").c_str());
        reopen();
    }

    std::string path_;                // the current file
    std::size_t capacity_;            // records kept in memory
    std::uint64_t rotate_at_;         // file size that triggers a rotation
    std::deque<std::string> records_; // the newest `capacity_` records
    std::ofstream out_;               // appending to path_
    std::uint64_t written_ = 0;       // path_'s size
};

} // namespace xfer
