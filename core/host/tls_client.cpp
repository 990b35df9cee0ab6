// tls_client: OpenSSL over an outbound connection's own non-blocking socket.
//
// Why not Asio's ssl::stream: it keeps two record-sized buffers (17 KiB each) per stream on
// top of OpenSSL's, for as long as the stream lives, and a pooled idle connection would
// keep them all. Driving OpenSSL over the socket directly costs one SSL object, whose
// buffers SSL_MODE_RELEASE_BUFFERS frees while the connection waits in the pool; the
// waiting itself stays the stream's (socket waits under its deadline), as for plain TCP.
#include "host/tls_client.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/system/system_error.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <utility>

namespace plugd {

namespace {

// Certificate verification results (X509_V_ERR_*), worded by OpenSSL.
class x509_category final : public boost::system::error_category {
  public:
    const char* name() const noexcept override { return "x509"; }
    std::string message(int ev) const override { return X509_verify_cert_error_string(ev); }
};

// Other OpenSSL errors (a packed ERR code), by their reason.
class tls_category final : public boost::system::error_category {
  public:
    const char* name() const noexcept override { return "tls"; }
    std::string message(int ev) const override {
        const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ev));
        return reason ? reason : "TLS error " + std::to_string(ev);
    }
};

const x509_category x509_errors;
const tls_category tls_errors;

// The oldest error OpenSSL queued for this thread, then a clean queue: the queue is per
// thread and a serving thread runs many connections.
boost::system::error_code take_openssl_error() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return boost::asio::error::make_error_code(boost::asio::error::eof);
    if (ERR_SYSTEM_ERROR(e)) {
        return {static_cast<int>(ERR_GET_REASON(e)), boost::system::system_category()};
    }
    return {static_cast<int>(e), tls_errors};
}

[[noreturn]] void fail_with(const boost::system::error_code& ec, const std::string& message) {
    throw boost::system::system_error(ec, message);
}

// A socket BIO that never raises SIGPIPE (OpenSSL's own writes with write(2), and a peer
// that closed first would kill the server): send with MSG_NOSIGNAL, as Asio does.
int bio_write(BIO* bio, const char* data, int size) {
    BIO_clear_retry_flags(bio);
    const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
    const ssize_t n = ::send(fd, data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<int>(n);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(bio);
    return -1;
}

int bio_read(BIO* bio, char* data, int size) {
    BIO_clear_retry_flags(bio);
    const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
    const ssize_t n = ::recv(fd, data, static_cast<std::size_t>(size), 0);
    if (n >= 0) return static_cast<int>(n);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_read(bio);
    return -1;
}

long bio_ctrl(BIO*, int command, long, void*) {
    return command == BIO_CTRL_FLUSH ? 1 : 0;  // nothing is buffered here
}

int bio_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
}

// Made once, never freed: OpenSSL keeps a pointer to it in every BIO.
BIO_METHOD* socket_method() {
    static BIO_METHOD* const method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "plugd socket");
        if (!m || !BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
            !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
            throw std::bad_alloc{};
        }
        return m;
    }();
    return method;
}

bool is_address(const std::string& name) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(name, ec);
    return !ec;
}

void require_readable(const std::filesystem::path& file, const std::string& what) {
    if (::access(file.c_str(), R_OK) != 0) {
        fail_with({errno, boost::system::system_category()}, what + " \"" + file.string() + "\"");
    }
}

// One non-blocking OpenSSL call on a link (`call` returns 1 when it did all it was asked):
// done, or the wait OpenSSL asks for, or else what `failed` makes of SSL_get_error's reason
// and errno as the call left it (both read before anything else can change them); `failed`
// throws where the call failed for good.
template <class Call, class Failed>
tls_link::step attempt(ssl_st* ssl, Call call, Failed failed) {
    ERR_clear_error();
    const int r = call();
    if (r == 1) return tls_link::step::done;
    const int error = SSL_get_error(ssl, r);
    const int saved_errno = errno;
    if (error == SSL_ERROR_WANT_READ) return tls_link::step::want_read;
    if (error == SSL_ERROR_WANT_WRITE) return tls_link::step::want_write;
    return failed(error, saved_errno);
}

}  // namespace

// ---- tls_link ----

tls_link::tls_link(tls_link&& other) noexcept : ssl_{std::exchange(other.ssl_, nullptr)} {}

tls_link& tls_link::operator=(tls_link&& other) noexcept {
    if (this != &other) {
        if (ssl_) SSL_free(ssl_);
        ssl_ = std::exchange(other.ssl_, nullptr);
    }
    return *this;
}

tls_link::~tls_link() {
    if (ssl_) SSL_free(ssl_);
}

tls_link::step tls_link::handshake(const std::string& where) {
    return attempt(
        ssl_, [&] { return SSL_connect(ssl_); },
        [&](int error, int saved_errno) -> step {
            if (error == SSL_ERROR_SSL) {
                if (const long verified = SSL_get_verify_result(ssl_); verified != X509_V_OK) {
                    ERR_clear_error();
                    fail_with({static_cast<int>(verified), x509_errors},
                              where + ": TLS handshake: certificate verify failed");
                }
            } else if (error == SSL_ERROR_SYSCALL) {
                ERR_clear_error();
                if (saved_errno == 0) {
                    fail_with(boost::asio::error::eof,
                              where +
                                  ": TLS handshake: the server closed the connection (is it a "
                                  "TLS port?)");
                }
                fail_with({saved_errno, boost::system::system_category()},
                          where + ": TLS handshake");
            }
            fail_with(take_openssl_error(), where + ": TLS handshake");
        });
}

tls_link::step tls_link::read(char* data, std::size_t size, std::size_t& n,
                              const std::string& where) {
    return attempt(
        ssl_, [&] { return SSL_read_ex(ssl_, data, size, &n); },
        [&](int error, int saved_errno) -> step {
            switch (error) {
                case SSL_ERROR_ZERO_RETURN:  // close_notify
                    return step::closed;
                case SSL_ERROR_SYSCALL:
                    ERR_clear_error();
                    if (saved_errno == 0) return step::closed;  // (OpenSSL 1.1) end of stream
                    fail_with({saved_errno, boost::system::system_category()}, where + ": read");
                case SSL_ERROR_SSL:
                    // A peer that closes without close_notify, as many servers do between
                    // requests: a close like any other; a reply cut short is still refused
                    // by the reads above.
                    if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                        ERR_clear_error();
                        return step::closed;
                    }
                    [[fallthrough]];
                default:
                    fail_with(take_openssl_error(), where + ": read");
            }
        });
}

tls_link::step tls_link::write(const char* data, std::size_t size, std::size_t& n,
                               const std::string& where) {
    if (size == 0) {
        n = 0;
        return step::done;
    }
    return attempt(
        ssl_, [&] { return SSL_write_ex(ssl_, data, size, &n); },
        [&](int error, int saved_errno) -> step {
            if (error == SSL_ERROR_SYSCALL) {
                ERR_clear_error();
                // A server that refused us after the handshake (TLS 1.3 checks the client's
                // certificate then) may have said why in an alert that is still unread.
                char probe;
                std::size_t ignored = 0;
                if (SSL_peek_ex(ssl_, &probe, 1, &ignored) != 1 &&
                    SSL_get_error(ssl_, 0) == SSL_ERROR_SSL) {
                    fail_with(take_openssl_error(), where + ": write");
                }
                ERR_clear_error();
                fail_with({saved_errno ? saved_errno : EPIPE, boost::system::system_category()},
                          where + ": write");
            }
            fail_with(take_openssl_error(), where + ": write");
        });
}

bool tls_link::still_usable() noexcept {
    ERR_clear_error();
    char probe;
    std::size_t n = 0;
    const int r = SSL_peek_ex(ssl_, &probe, 1, &n);
    const bool waiting = r != 1 && SSL_get_error(ssl_, r) == SSL_ERROR_WANT_READ;
    ERR_clear_error();
    return waiting;
}

void tls_link::close_notify() noexcept {
    if (!ssl_ || !SSL_is_init_finished(ssl_)) return;
    ERR_clear_error();
    SSL_shutdown(ssl_);  // one attempt: nothing waits for the peer's answer
    ERR_clear_error();
}

// ---- tls_client_contexts ----

void tls_client_contexts::context_deleter::operator()(ssl_ctx_st* ctx) const noexcept {
    SSL_CTX_free(ctx);
}

tls_client_contexts::tls_client_contexts(std::filesystem::path relative_to)
    : relative_to_{std::move(relative_to)} {}

tls_client_contexts::~tls_client_contexts() = default;

std::filesystem::path tls_client_contexts::resolve(const std::string& file) const {
    if (file.empty()) return {};
    const std::filesystem::path p{file};
    return p.is_absolute() || relative_to_.empty() ? p : relative_to_ / p;
}

std::string tls_client_contexts::pool_key(const tls_options& options) const {
    // '\n' cannot be in the parts a server.json would give, so the fields stay apart.
    return "tls\n" + resolve(options.ca_file).string() + "\n" +
           resolve(options.client_certificate).string() + "\n" +
           resolve(options.client_key).string() + "\n" + options.server_name;
}

ssl_ctx_st* tls_client_contexts::context_for(const tls_options& options, const std::string& where) {
    const auto ca = resolve(options.ca_file);
    const auto certificate = resolve(options.client_certificate);
    const auto key = options.client_key.empty() ? certificate : resolve(options.client_key);
    const std::string files = ca.string() + "\n" + certificate.string() + "\n" + key.string();

    const std::lock_guard lock{mutex_};
    if (auto found = contexts_.find(files); found != contexts_.end()) return found->second.get();

    ERR_clear_error();
    context_ptr ctx{SSL_CTX_new(TLS_client_method())};
    if (!ctx) fail_with(take_openssl_error(), where + ": TLS setup");
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
    if (ca.empty()) {
        if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
            fail_with(take_openssl_error(), where + ": TLS: the system's CA store");
        }
    } else {
        require_readable(ca, where + ": TLS CA file");
        if (SSL_CTX_load_verify_locations(ctx.get(), ca.c_str(), nullptr) != 1) {
            fail_with(take_openssl_error(), where + ": TLS CA file \"" + ca.string() + "\"");
        }
    }
    if (!certificate.empty()) {
        const std::string cert_what =
            where + ": TLS client certificate \"" + certificate.string() + "\"";
        const std::string key_what = where + ": TLS client key \"" + key.string() + "\"";
        require_readable(certificate, where + ": TLS client certificate");
        if (SSL_CTX_use_certificate_chain_file(ctx.get(), certificate.c_str()) != 1) {
            fail_with(take_openssl_error(), cert_what);
        }
        require_readable(key, where + ": TLS client key");
        if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
            fail_with(take_openssl_error(), key_what);
        }
        if (SSL_CTX_check_private_key(ctx.get()) != 1) {
            fail_with(take_openssl_error(), key_what + " does not belong to the certificate");
        }
    } else if (!options.client_key.empty()) {
        fail_with(make_error_code(boost::system::errc::invalid_argument),
                  where + ": TLS client_key is set without client_certificate");
    }
    return contexts_.emplace(files, std::move(ctx)).first->second.get();
}

tls_link tls_client_contexts::open(int fd, const tls_options& options, const std::string& host,
                                   const std::string& where) {
    ssl_ctx_st* ctx = context_for(options, where);
    ERR_clear_error();
    tls_link link{SSL_new(ctx)};
    BIO* bio = link.ssl_ ? BIO_new(socket_method()) : nullptr;
    if (!bio) fail_with(take_openssl_error(), where + ": TLS setup");
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)));
    SSL_set_bio(link.ssl_, bio, bio);  // the SSL owns it now
    const std::string& name = options.server_name.empty() ? host : options.server_name;
    if (is_address(name)) {
        // RFC 6066: no SNI for an address; it is checked against the IP SANs.
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(link.ssl_), name.c_str()) != 1) {
            fail_with(take_openssl_error(), where + ": TLS: the address " + name);
        }
    } else if (SSL_set_tlsext_host_name(link.ssl_, name.c_str()) != 1 ||
               SSL_set1_host(link.ssl_, name.c_str()) != 1) {
        fail_with(take_openssl_error(), where + ": TLS: the server name \"" + name + "\"");
    }
    SSL_set_connect_state(link.ssl_);
    return link;
}

}  // namespace plugd
