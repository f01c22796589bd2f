// SPDX-License-Identifier: MIT
// ringd/tls.hpp — TLS (OpenSSL 3) over a connected socket, driven by the ring. OpenSSL reads
// ciphertext straight out of the bytes the ring received (a view of a buffer_ring, or the
// stream's own buffer) and writes into a memory BIO that ringd sends; nothing blocks and every
// wait is cancellable like any other ring operation. After the handshake a tls_stream is a
// byte_stream (stream.hpp), like plain_stream. Link with OpenSSL (`dependency('openssl')`).
//
//   ringd::tls_context tls = ringd::tls_context::server({.certificate_file = "cert.pem",
//                                                        .private_key_file = "key.pem"});
//   ringd::tls_stream s(ctx, std::move(fd), tls, pool); // pool: a buffer_ring (or none)
//   if (auto ok = co_await s.handshake(); !ok) log(ok.error().message()); // OpenSSL's reason
//   auto n = co_await s.read(buf);   // result<size_t>; 0: the peer sent close_notify
#pragma once

#include <ringd/buffer_ring.hpp>
#include <ringd/detail/tls_error.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/recv_stream.hpp>
#include <ringd/result.hpp>
#include <ringd/stream.hpp>
#include <ringd/task.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace ringd {

// Errors from OpenSSL: tls_category() (message: OpenSSL's reason, e.g. "wrong version number
// (SSL routines)") and tls_verify_error_category() ("certificate verify failed: self-signed
// certificate"). A peer that closes the connection without close_notify reads as
// "unexpected eof while reading (SSL routines)".
using detail::tls_category;
using detail::tls_verify_error_category;

struct tls_options {
    std::string certificate_file; // PEM, leaf first then the chain. Server: required. Client:
                                  // optional, presented when the server asks (mutual TLS)
    std::string private_key_file; // PEM key of certificate_file, not encrypted (no passphrase)
    // Server: when set, clients must present a certificate that chains to these CAs.
    // Client: the CAs that the server's certificate must chain to; empty: the system's store.
    std::string ca_file;
    bool verify_peer = true; // client only: check the server's certificate (off: tests only)
    int min_version = TLS1_2_VERSION; // never below TLS 1.2
    // What may be negotiated, in OpenSSL's syntax (openssl-ciphers(1), SSL_CTX_set1_groups_list).
    // The defaults allow AEAD ciphers with forward secrecy only: no CBC, no RSA key exchange,
    // no static (EC)DH. An empty string keeps OpenSSL's own default for that setting.
    std::string ciphers = default_ciphers;           // TLS 1.2
    std::string ciphersuites = default_ciphersuites; // TLS 1.3
    std::string groups = default_groups;             // key exchange groups (curves)

    static constexpr const char* default_ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL";
    static constexpr const char* default_ciphersuites =
        "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
    static constexpr const char* default_groups = "X25519:P-256:P-384";
};

// The shared settings (SSL_CTX) for many connections. Copies share one context.
class tls_context {
public:
    // Setup: throws std::system_error (tls_category()) naming the file or setting and what is
    // wrong with it, e.g. "certificate /etc/x/cert.pem: No such file or directory" (== the
    // std::errc), "certificate /etc/x/cert.pem is not a PEM certificate: no start line (PEM
    // routines)", "private key /etc/x/key.pem does not match certificate /etc/x/cert.pem: key
    // values mismatch (x509 certificate routines)", "CA file /etc/x/ca.pem has no certificate in
    // it: ..." or "set ciphers 'RC4': no cipher match (SSL routines)".
    static tls_context server(const tls_options& options);
    static tls_context client(const tls_options& options);

    tls_context(const tls_context& other) noexcept : ctx_(other.ctx_), server_(other.server_) {
        SSL_CTX_up_ref(ctx_);
    }
    tls_context& operator=(tls_context other) noexcept {
        std::swap(ctx_, other.ctx_);
        std::swap(server_, other.server_);
        return *this;
    }
    ~tls_context() { SSL_CTX_free(ctx_); }

    [[nodiscard]] SSL_CTX* native_handle() const noexcept { return ctx_; }
    [[nodiscard]] bool is_server() const noexcept { return server_; }

private:
    tls_context(SSL_CTX* ctx, bool server) noexcept : ctx_(ctx), server_(server) {}
    static tls_context make(const tls_options& options, bool server);

    SSL_CTX* ctx_;        // owned reference
    bool server_ = false; // which side handshake() plays
};

namespace detail {
// The read side of a tls_stream, as OpenSSL sees it (a BIO): ciphertext received and not yet
// read by OpenSSL, which copies it out of the received buffer itself.
struct tls_input {
    received view;                    // a buffer_ring's buffer, given back once read through
    std::span<const std::byte> bytes; // what is left to read (in `view` or the stream's buffer)
};
BIO_METHOD* tls_input_method();
} // namespace detail

// One TLS connection over a socket it owns. Memory: OpenSSL's (its record buffers are released
// between records: SSL_MODE_RELEASE_BUFFERS) and what the peer's last flight left in the write
// BIO; reading through a buffer_ring adds ~128 bytes and one pool buffer while a record arrives,
// reading on its own a 17 KiB buffer, taken at the first read. Not copyable or movable:
// in-flight ring operations point into it.
class tls_stream {
public:
    // `server_name` (client only): sent as SNI and checked against the certificate when the
    // context verifies. Throws std::bad_alloc when OpenSSL cannot allocate.
    tls_stream(io_context& ctx, unique_fd socket, const tls_context& tls,
               std::string_view server_name = {});
    // The same, reading the socket through a recv_stream on `pool` (which must outlive the
    // stream): an idle connection holds no receive buffer.
    tls_stream(io_context& ctx, unique_fd socket, const tls_context& tls, buffer_ring& pool,
               std::string_view server_name = {});
    tls_stream(const tls_stream&) = delete;
    tls_stream& operator=(const tls_stream&) = delete;
    ~tls_stream() { SSL_free(ssl_); } // frees both BIOs too

    // Runs the handshake. Errors: OpenSSL's (tls/tls-verify categories), the socket's, or
    // operation_canceled.
    task<result<void>> handshake();
    // Up to data.size() bytes of plaintext; 0 once the peer sent close_notify.
    task<result<std::size_t>> read(std::span<std::byte> data);
    // Waits until read() has something to work on (plaintext or ciphertext already received,
    // or the end), so that a caller can wait without holding a buffer for read(). Errors:
    // receive's (the socket's, EOF without close_notify, operation_canceled).
    task<result<void>> wait_readable();
    // All of `data` (in records of at most 16 KiB), or the error that stopped it.
    task<result<std::size_t>> write(std::span<const std::byte> data);
    // Sends close_notify (our direction ends; reads stay possible until the peer's close_notify).
    task<result<void>> shutdown();

    [[nodiscard]] borrowed_fd socket() const noexcept { return socket_; }
    [[nodiscard]] SSL* native_handle() const noexcept { return ssl_; }
    // "TLSv1.3" after the handshake.
    [[nodiscard]] std::string_view protocol_version() const noexcept {
        return SSL_get_version(ssl_);
    }
    // The peer certificate's subject ("CN=client,O=x"), or empty when it sent none.
    [[nodiscard]] std::string peer_subject() const;

private:
    enum class step { handshake, read, write, shutdown };

    // Runs `what` until OpenSSL is done with it, moving bytes between socket and BIOs; returns
    // what the SSL call returned (> 0), or 0 for close_notify on a read.
    task<result<int>> drive(step what, std::span<std::byte> in, std::span<const std::byte> out);
    int call(step what, std::span<std::byte> in, std::span<const std::byte> out) noexcept;
    // Sends whatever OpenSSL has put into the write BIO, straight from the BIO's memory.
    task<result<void>> flush();
    // Receives one chunk from the socket for OpenSSL to read. EOF: an error (no close_notify).
    task<result<void>> receive();

    static constexpr std::size_t chunk = 17 * 1024; // one TLS record with its overhead

    io_context* ctx_;                     // the ring
    unique_fd socket_;                    // the connection
    std::optional<recv_stream> stream_;   // reads through a buffer_ring; empty: into buffer_
    detail::tls_input input_;             // ciphertext received, not yet read by OpenSSL
    std::unique_ptr<std::byte[]> buffer_; // without a pool: `chunk` bytes, from the first read
    SSL* ssl_ = nullptr;                  // owned; owns rbio_ and wbio_
    BIO* rbio_ = nullptr;                 // reads input_
    BIO* wbio_ = nullptr;                 // ciphertext from OpenSSL, for us to send
};

static_assert(byte_stream<tls_stream>);

// =============================================================================================

inline tls_context tls_context::server(const tls_options& options) {
    return make(options, true);
}
inline tls_context tls_context::client(const tls_options& options) {
    return make(options, false);
}

namespace detail {

// Why the setup file at `path` cannot be read, as the tls_category() code OpenSSL would give
// (errno), or no error. Checked before OpenSSL reads it: OpenSSL reads a directory as a file
// with no PEM in it. O_NONBLOCK: a FIFO does not block the check.
inline std::error_code tls_file_unreadable(const std::string& path) noexcept {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd) return tls_system_error(errno);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return tls_system_error(errno);
    if (S_ISDIR(st.st_mode)) return tls_system_error(EISDIR);
    return {};
}

// Throws OpenSSL's oldest queued error (or `fallback`) with `what`, which names the setting or
// file; when OpenSSL has no text for the error, `call` (the OpenSSL function that failed) too.
[[noreturn]] inline void throw_tls_setup_error(std::error_code ec, std::string what,
                                               const char* call) {
    if (!tls_error_has_reason(ec)) what += std::string(" (") + call + " failed)";
    throw std::system_error(ec, what);
}
inline std::error_code take_tls_setup_error() noexcept {
    return take_tls_error(std::make_error_code(std::errc::invalid_argument));
}

} // namespace detail

inline tls_context tls_context::make(const tls_options& options, bool server) {
    auto fail = [](const std::string& what, const char* call) {
        detail::throw_tls_setup_error(detail::take_tls_setup_error(), what, call);
    };
    // A file that cannot be read: "certificate /etc/x/cert.pem: No such file or directory".
    auto check_file = [](const std::string& role, const std::string& path) {
        if (std::error_code ec = detail::tls_file_unreadable(path))
            throw std::system_error(ec, role + " " + path);
    };
    ERR_clear_error();
    SSL_CTX* raw = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (raw == nullptr) fail("create the TLS context", "SSL_CTX_new");
    tls_context tls(raw, server); // owns it from here on, also when we throw
    if (SSL_CTX_set_min_proto_version(raw, std::max(options.min_version, TLS1_2_VERSION)) != 1)
        fail("set minimum TLS version", "SSL_CTX_set_min_proto_version");
    if (!options.ciphers.empty() && SSL_CTX_set_cipher_list(raw, options.ciphers.c_str()) != 1)
        fail("set ciphers '" + options.ciphers + "'", "SSL_CTX_set_cipher_list");
    if (!options.ciphersuites.empty() &&
        SSL_CTX_set_ciphersuites(raw, options.ciphersuites.c_str()) != 1)
        fail("set TLS 1.3 ciphersuites '" + options.ciphersuites + "'", "SSL_CTX_set_ciphersuites");
    if (!options.groups.empty() && SSL_CTX_set1_groups_list(raw, options.groups.c_str()) != 1)
        fail("set groups '" + options.groups + "'", "SSL_CTX_set1_groups_list");
    if (server) SSL_CTX_set_options(raw, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);
    if (!options.certificate_file.empty()) {
        const std::string& cert = options.certificate_file;
        check_file("certificate", cert);
        if (SSL_CTX_use_certificate_chain_file(raw, cert.c_str()) != 1) {
            std::error_code ec = detail::take_tls_setup_error();
            bool not_pem = detail::tls_error_is(ec, ERR_LIB_PEM, PEM_R_NO_START_LINE);
            detail::throw_tls_setup_error(
                ec, "certificate " + cert + (not_pem ? " is not a PEM certificate" : ""),
                "SSL_CTX_use_certificate_chain_file");
        }
        const std::string& key = options.private_key_file.empty() ? cert : options.private_key_file;
        check_file("private key", key);
        // An encrypted key: an error, not OpenSSL's passphrase prompt on the terminal (a daemon
        // started from a shell would wait there). The callback notes that it was asked.
        bool passphrase_asked = false;
        SSL_CTX_set_default_passwd_cb(raw, [](char*, int, int, void* asked) -> int {
            if (asked != nullptr) *static_cast<bool*>(asked) = true;
            return -1;
        });
        SSL_CTX_set_default_passwd_cb_userdata(raw, &passphrase_asked);
        int loaded = SSL_CTX_use_PrivateKey_file(raw, key.c_str(), SSL_FILETYPE_PEM);
        SSL_CTX_set_default_passwd_cb_userdata(raw, nullptr);
        if (loaded != 1) {
            std::error_code ec = detail::take_tls_setup_error();
            std::string what = "private key " + key;
            if (passphrase_asked) {
                what += " is encrypted (a key without a passphrase is needed)";
                ec = {static_cast<int>(ERR_PACK(ERR_LIB_PEM, 0, PEM_R_BAD_PASSWORD_READ)),
                      tls_category()};
            } else if (detail::tls_error_is(ec, ERR_LIB_X509, X509_R_KEY_VALUES_MISMATCH))
                what += " does not match certificate " + cert;
            else if (detail::tls_error_is(ec, ERR_LIB_PEM, PEM_R_NO_START_LINE) ||
                     detail::tls_error_is(ec, ERR_LIB_OSSL_DECODER, ERR_R_UNSUPPORTED))
                what += " is not a PEM private key";
            detail::throw_tls_setup_error(ec, what, "SSL_CTX_use_PrivateKey_file");
        }
        if (SSL_CTX_check_private_key(raw) != 1)
            fail("private key " + key + " does not match certificate " + cert,
                 "SSL_CTX_check_private_key");
    } else if (server) {
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                "TLS server: a certificate_file is required");
    }
    if (!options.ca_file.empty()) {
        const std::string role = server ? "client CA file" : "CA file";
        check_file(role, options.ca_file);
        // A file with no certificate in it (empty, or not PEM) is an error of its own.
        auto fail_ca = [&](const char* call) {
            std::error_code ec = detail::take_tls_setup_error();
            bool none =
                detail::tls_error_is(ec, ERR_LIB_X509, X509_R_NO_CERTIFICATE_OR_CRL_FOUND) ||
                detail::tls_error_is(ec, ERR_LIB_PEM, PEM_R_NO_START_LINE);
            detail::throw_tls_setup_error(
                ec, role + " " + options.ca_file + (none ? " has no certificate in it" : ""), call);
        };
        if (SSL_CTX_load_verify_locations(raw, options.ca_file.c_str(), nullptr) != 1)
            fail_ca("SSL_CTX_load_verify_locations");
        if (server) {
            STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.ca_file.c_str());
            if (names == nullptr) fail_ca("SSL_load_client_CA_file");
            SSL_CTX_set_client_CA_list(raw, names);
        }
    } else if (!server && SSL_CTX_set_default_verify_paths(raw) != 1) {
        fail("load the system's CA store", "SSL_CTX_set_default_verify_paths");
    }
    if (server) {
        if (!options.ca_file.empty())
            SSL_CTX_set_verify(raw, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    } else {
        SSL_CTX_set_verify(raw, options.verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    }
    return tls;
}

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
