// SPDX-License-Identifier: MIT
// xfer/sha256.hpp — an incremental SHA-256 (OpenSSL EVP), and its lowercase hex form.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <memory>
#include <new>
#include <span>
#include <string>

namespace xfer {

class sha256 {
public:
    // Throws std::bad_alloc when OpenSSL cannot allocate its context.
    sha256() : ctx_(EVP_MD_CTX_new()) {
        if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1)
            throw std::bad_alloc();
    }

    void update(std::span<const std::byte> data) noexcept {
        EVP_DigestUpdate(ctx_.get(), data.data(), data.size());
    }

    // The digest as 64 lowercase hex digits. Ends this hash: call once.
    [[nodiscard]] std::string finish_hex() noexcept {
        std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
        unsigned int length = 0;
        EVP_DigestFinal_ex(ctx_.get(), digest.data(), &length);
        return to_hex(std::span(digest.data(), length));
    }

    static std::string to_hex(std::span<const unsigned char> bytes) {
        static constexpr char digits[] = "0123456789abcdef";
        std::string out;
        out.reserve(bytes.size() * 2);
        for (unsigned char b : bytes) {
            out += digits[b >> 4];
            out += digits[b & 0xf];
        }
        return out;
    }

private:
    struct free_ctx {
        void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
    };
    std::unique_ptr<EVP_MD_CTX, free_ctx> ctx_; // the running digest
};

} // namespace xfer
