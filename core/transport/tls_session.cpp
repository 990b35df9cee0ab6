// tls_session: a client_transport's TLS half: OpenSSL on the connection's non-blocking
// socket, its "want read"/"want write" turned into the transport's would_block and waits.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "transport/transport.hpp"

namespace plugd {

struct tls_session {
    SSL* ssl = nullptr;
    std::string client_subject;       ///< of the verified client certificate
    std::string error;                ///< why the handshake failed
    bool checked_first_byte = false;  ///< the client's first byte was a handshake record
    bool read_wants_write = false;    ///< the last read stopped for writability
    bool broken = false;              ///< a fatal error: no close_notify may follow
    bool shut = false;                ///< close_notify sent (or tried)
};

namespace {

// A TLS record's first byte for a handshake message: what every ClientHello starts with.
constexpr unsigned char handshake_record = 0x16;

std::string rfc2253(const X509_NAME* name) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (!bio) return {};
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string text = n > 0 ? std::string{data, static_cast<std::size_t>(n)} : std::string{};
    BIO_free(bio);
    return text;
}

// A failure: the connection cannot go on (and must not send close_notify).
boost::system::error_code broken(tls_session& s, int ssl_error) {
    s.broken = true;
    ERR_clear_error();
    if (ssl_error == SSL_ERROR_SYSCALL && errno != 0)
        return {errno, boost::system::system_category()};
    return boost::asio::error::connection_reset;
}

}  // namespace

bool client_transport::use_tls(ssl_ctx_st* context) noexcept {
    SSL* ssl = SSL_new(context);  // holds a reference to the context
    if (!ssl) {
        ERR_clear_error();
        return false;
    }
    SSL_set_fd(ssl, socket_.native_handle());
    SSL_set_accept_state(ssl);
    tls_ = new (std::nothrow) tls_session;
    if (!tls_) {
        SSL_free(ssl);
        return false;
    }
    tls_->ssl = ssl;
    return tls_ != nullptr;
}

handshake_step client_transport::handshake() noexcept {
    tls_session& s = *tls_;
    if (!s.checked_first_byte) {
        // Peeked, not read: a plaintext client is told so in plaintext (HTTP: a 400).
        unsigned char first = 0;
        const ssize_t n = ::recv(socket_.native_handle(), &first, 1, MSG_PEEK);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return handshake_step::want_read;
        if (n < 0 && errno == EINTR) return handshake_step::want_read;
        if (n <= 0) {
            s.broken = true;
            s.error = n == 0 ? "the client closed before its hello" : std::strerror(errno);
            return handshake_step::failed;
        }
        if (first != handshake_record) {
            s.broken = true;
            return handshake_step::plaintext;
        }
        s.checked_first_byte = true;
    }
    ERR_clear_error();
    const int r = SSL_do_handshake(s.ssl);
    if (r == 1) {
        if (X509* peer = SSL_get0_peer_certificate(s.ssl);
            peer && SSL_get_verify_result(s.ssl) == X509_V_OK)
            s.client_subject = rfc2253(X509_get_subject_name(peer));
        return handshake_step::done;
    }
    const int e = SSL_get_error(s.ssl, r);
    if (e == SSL_ERROR_WANT_READ) return handshake_step::want_read;
    if (e == SSL_ERROR_WANT_WRITE) return handshake_step::want_write;
    const unsigned long code = ERR_peek_error();
    if (code != 0) {
        const char* reason = ERR_reason_error_string(code);
        s.error = reason ? reason : "TLS error " + std::to_string(code);
    } else {
        s.error = e == SSL_ERROR_SYSCALL && errno != 0 ? std::strerror(errno)
                                                       : "the client closed during the handshake";
    }
    s.broken = true;
    ERR_clear_error();
    return handshake_step::failed;
}

bool client_transport::resumed() const noexcept {
    return tls_ && SSL_session_reused(tls_->ssl) == 1;
}

// Asked of OpenSSL each time rather than kept per connection: each is a pointer read or
// two, and only an access log line asks.
std::string_view client_transport::tls_version() const noexcept {
    return tls_ ? SSL_get_version(tls_->ssl) : std::string_view{};
}

std::string_view client_transport::tls_cipher() const noexcept {
    const SSL_CIPHER* cipher = tls_ ? SSL_get_current_cipher(tls_->ssl) : nullptr;
    return cipher ? SSL_CIPHER_get_name(cipher) : std::string_view{};
}

std::string client_transport::handshake_error() const {
    return tls_ ? tls_->error : std::string{};
}

std::string_view client_transport::tls_client_subject() const noexcept {
    return tls_->client_subject;
}

bool client_transport::tls_pending() const noexcept {
    return SSL_has_pending(tls_->ssl) == 1;
}

bool client_transport::tls_read_wants_write() const noexcept {
    return tls_->read_wants_write;
}

std::size_t client_transport::tls_read(std::span<char> into,
                                       boost::system::error_code& ec) noexcept {
    tls_session& s = *tls_;
    s.read_wants_write = false;
    if (s.broken) {
        ec = boost::asio::error::connection_reset;
        return 0;
    }
    ERR_clear_error();
    const int n = SSL_read(s.ssl, into.data(), static_cast<int>(into.size()));
    if (n > 0) {
        ec = {};
        return static_cast<std::size_t>(n);
    }
    switch (const int e = SSL_get_error(s.ssl, n)) {
        case SSL_ERROR_WANT_READ:
            ec = boost::asio::error::would_block;
            break;
        case SSL_ERROR_WANT_WRITE:
            s.read_wants_write = true;
            ec = boost::asio::error::would_block;
            break;
        case SSL_ERROR_ZERO_RETURN:  // close_notify, or (IGNORE_UNEXPECTED_EOF) a plain end
            ec = boost::asio::error::eof;
            break;
        default:
            ec = broken(s, e);
    }
    return 0;
}

tls_io client_transport::tls_write(boost::asio::const_buffer bytes,
                                   boost::system::error_code& ec) noexcept {
    tls_session& s = *tls_;
    tls_io r;
    if (s.broken) {
        ec = boost::asio::error::connection_reset;
        return r;
    }
    ERR_clear_error();
    const int n = SSL_write(s.ssl, bytes.data(), static_cast<int>(bytes.size()));
    if (n > 0) {
        r.bytes = static_cast<std::size_t>(n);
        return r;
    }
    switch (const int e = SSL_get_error(s.ssl, n)) {
        case SSL_ERROR_WANT_READ:
            r.want_read = true;
            break;
        case SSL_ERROR_WANT_WRITE:
            r.want_write = true;
            break;
        default:
            ec = broken(s, e);
    }
    return r;
}

std::size_t client_transport::tls_write_now(boost::asio::const_buffer bytes,
                                            boost::system::error_code& ec) noexcept {
    std::size_t written = 0;
    ec = {};
    while (written < bytes.size()) {
        const tls_io r =
            tls_write(boost::asio::buffer(static_cast<const char*>(bytes.data()) + written,
                                          bytes.size() - written),
                      ec);
        written += r.bytes;
        if (ec) break;
        if (r.want_read || r.want_write) {
            ec = boost::asio::error::would_block;
            break;
        }
    }
    return written;
}

void client_transport::tls_shutdown() noexcept {
    tls_session& s = *tls_;
    if (s.shut || s.broken || !SSL_is_init_finished(s.ssl)) return;
    s.shut = true;
    // One attempt, never waiting: the close_notify goes if the socket takes it.
    SSL_shutdown(s.ssl);
    ERR_clear_error();
}

void client_transport::tls_free() noexcept {
    SSL_free(tls_->ssl);
    delete tls_;
    tls_ = nullptr;
}

}  // namespace plugd
