// SPDX-License-Identifier: MIT
// ringd/detail/tls_stream_impl.hpp — tls_stream (tls.hpp) at work: the read BIO that hands
// OpenSSL the received ciphertext, and the handshake, read, write and shutdown loops that move
// bytes between the socket and OpenSSL's BIOs.
#pragma once

#include <ringd/tls.hpp>

#include <openssl/x509.h>

#include <algorithm>
#include <cstring>

namespace ringd {

namespace detail {

// OpenSSL calls this for ciphertext: it copies out of the received bytes, and gives the pool's
// buffer back as soon as it has read all of it. Nothing there: "retry" (SSL_ERROR_WANT_READ).
inline int tls_input_read(BIO* bio, char* out, int length) noexcept {
    auto* in = static_cast<tls_input*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    if (in->bytes.empty() || length <= 0) {
        BIO_set_retry_read(bio);
        return -1;
    }
    std::size_t n = std::min(in->bytes.size(), static_cast<std::size_t>(length));
    std::memcpy(out, in->bytes.data(), n);
    in->bytes = in->bytes.subspan(n);
    if (in->bytes.empty()) in->view.release();
    return static_cast<int>(n);
}

inline long tls_input_ctrl(BIO* bio, int command, long, void*) noexcept {
    auto* in = static_cast<tls_input*>(BIO_get_data(bio));
    switch (command) {
    case BIO_CTRL_PENDING:
        return static_cast<long>(in->bytes.size());
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0;
    }
}

// One method table for every stream (OpenSSL keeps it for the life of the process).
inline BIO_METHOD* tls_input_method() {
    static BIO_METHOD* method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ringd input");
        if (m == nullptr) return m;
        BIO_meth_set_read(m, &tls_input_read);
        BIO_meth_set_ctrl(m, &tls_input_ctrl);
        BIO_meth_set_create(m, [](BIO* bio) {
            BIO_set_init(bio, 1);
            return 1;
        });
        return m;
    }();
    return method;
}

} // namespace detail

inline tls_stream::tls_stream(io_context& ctx, unique_fd socket, const tls_context& tls,
                              buffer_ring& pool, std::string_view server_name)
    : tls_stream(ctx, std::move(socket), tls, server_name) {
    stream_.emplace(pool, socket_);
}

inline tls_stream::tls_stream(io_context& ctx, unique_fd socket, const tls_context& tls,
                              std::string_view server_name)
    : ctx_(&ctx), socket_(std::move(socket)) {
    ssl_ = SSL_new(tls.native_handle());
    BIO_METHOD* input = detail::tls_input_method();
    rbio_ = input != nullptr ? BIO_new(input) : nullptr;
    wbio_ = BIO_new(BIO_s_mem());
    if (ssl_ == nullptr || rbio_ == nullptr || wbio_ == nullptr) {
        BIO_free(rbio_);
        BIO_free(wbio_);
        SSL_free(ssl_);
        ssl_ = nullptr;
        throw std::bad_alloc();
    }
    BIO_set_data(rbio_, &input_);
    SSL_set_bio(ssl_, rbio_, wbio_); // ssl_ owns both now
    if (tls.is_server()) {
        SSL_set_accept_state(ssl_);
    } else {
        SSL_set_connect_state(ssl_);
        if (!server_name.empty()) {
            std::string name(server_name);
            SSL_set_tlsext_host_name(ssl_, name.c_str());
            SSL_set1_host(ssl_, name.c_str());
        }
    }
}

inline std::string tls_stream::peer_subject() const {
    X509* cert = SSL_get0_peer_certificate(ssl_);
    if (cert == nullptr) return {};
    char* text = X509_NAME_oneline(X509_get_subject_name(cert), nullptr, 0);
    std::string out = text != nullptr ? text : "";
    OPENSSL_free(text);
    return out;
}

inline task<result<void>> tls_stream::handshake() {
    auto r = co_await drive(step::handshake, {}, {});
    if (!r) co_return error_of(r);
    co_return result<void>{};
}

inline task<result<std::size_t>> tls_stream::read(std::span<std::byte> data) {
    if (data.empty()) co_return std::size_t{0};
    auto r = co_await drive(step::read, data, {});
    if (!r) co_return error_of(r);
    co_return static_cast<std::size_t>(*r);
}

inline task<result<void>> tls_stream::wait_readable() {
    if (!input_.bytes.empty() || SSL_has_pending(ssl_) == 1) co_return result<void>{};
    auto got = co_await receive();
    co_return got;
}

inline task<result<std::size_t>> tls_stream::write(std::span<const std::byte> data) {
    constexpr std::size_t record = 16 * 1024;
    std::size_t done = 0;
    while (done < data.size()) {
        auto piece = data.subspan(done, std::min(record, data.size() - done));
        auto r = co_await drive(step::write, {}, piece);
        if (!r) co_return error_of(r);
        done += static_cast<std::size_t>(*r);
    }
    co_return done;
}

inline task<result<void>> tls_stream::shutdown() {
    ERR_clear_error();
    SSL_shutdown(ssl_); // queues close_notify; we do not wait for the peer's
    auto sent = co_await flush();
    co_return sent;
}

inline int tls_stream::call(step what, std::span<std::byte> in,
                            std::span<const std::byte> out) noexcept {
    switch (what) {
    case step::handshake:
        return SSL_do_handshake(ssl_);
    case step::read:
        return SSL_read(ssl_, in.data(),
                        static_cast<int>(std::min<std::size_t>(in.size(), INT32_MAX)));
    case step::write:
        return SSL_write(ssl_, out.data(), static_cast<int>(out.size()));
    case step::shutdown:
        return SSL_shutdown(ssl_);
    }
    return -1;
}

// [drive]
inline task<result<int>> tls_stream::drive(step what, std::span<std::byte> in,
                                           std::span<const std::byte> out) {
    for (;;) {
        ERR_clear_error();
        int rc = call(what, in, out);
        int error = rc > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl_, rc);
        // OpenSSL's error queue is per thread, and other connections' coroutines run on this
        // thread during the co_awaits below: read the reason now.
        std::error_code failure;
        if (error != SSL_ERROR_NONE && error != SSL_ERROR_WANT_READ &&
            error != SSL_ERROR_WANT_WRITE && error != SSL_ERROR_ZERO_RETURN)
            failure = detail::tls_failure(ssl_, error);
        // Whatever OpenSSL produced goes out first: handshake messages, records, alerts.
        auto flushed = co_await flush();
        if (failure) co_return unexpected<std::error_code>(failure);
        if (error == SSL_ERROR_ZERO_RETURN) co_return 0; // close_notify
        if (!flushed) co_return error_of(flushed);
        if (error == SSL_ERROR_NONE) co_return rc;
        if (error == SSL_ERROR_WANT_READ) {
            auto got = co_await receive();
            if (!got) co_return error_of(got);
        }
        // SSL_ERROR_WANT_WRITE: the memory BIO never fills, and it was flushed above.
    }
}
// [/drive]

inline task<result<void>> tls_stream::flush() {
    char* data = nullptr;
    long pending = BIO_get_mem_data(wbio_, &data);
    if (pending <= 0) co_return result<void>{};
    // Nothing writes into wbio_ until this returns: the stream does one thing at a time.
    auto sent = co_await async_send_all(
        *ctx_, socket_, std::as_bytes(std::span(data, static_cast<std::size_t>(pending))));
    (void)BIO_reset(wbio_); // empties it, keeping its memory for the next flight
    co_return sent;
}

inline task<result<void>> tls_stream::receive() {
    // OpenSSL asks for more only once it has read everything: input_ is empty (and released).
    auto eof = [] {
        return unexpected<std::error_code>(std::error_code(
            static_cast<int>(ERR_PACK(ERR_LIB_SSL, 0, SSL_R_UNEXPECTED_EOF_WHILE_READING)),
            tls_category()));
    };
    if (stream_) {
        auto view = co_await stream_->next();
        if (!view) co_return error_of(view);
        if (view->empty()) co_return eof();
        input_.view = std::move(*view);
        input_.bytes = input_.view.bytes();
        co_return result<void>{};
    }
    if (!buffer_) buffer_.reset(new std::byte[chunk]);
    std::span<std::byte> in(buffer_.get(), chunk);
    auto n = co_await async_recv(*ctx_, socket_, in);
    if (!n) co_return error_of(n);
    if (*n == 0) co_return eof();
    input_.bytes = in.first(*n);
    co_return result<void>{};
}

} // namespace ringd
