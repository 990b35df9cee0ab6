// tls_context: reading and checking a listener's certificate, key and client CAs into an
// SSL_CTX, with plugd's defaults.
#include "tls/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "log.hpp"
#include "tls/ticket_keys.hpp"

namespace plugd {
namespace {

// TLS 1.2's ciphers when server.json names none: forward secrecy (ECDHE) and AEAD only,
// so no CBC with SHA-1, nothing below 128 bits, no static RSA key exchange.
constexpr const char* default_tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// The latest OpenSSL error's reason ("no start line", "bad decrypt"), clearing the queue.
std::string openssl_reason() {
    const unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    if (e == 0) return "unknown error";
    const char* reason = ERR_reason_error_string(e);
    return reason ? reason : "error " + std::to_string(e);
}

bool last_error_is_no_pem() {
    const unsigned long e = ERR_peek_last_error();
    return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

struct bio_deleter {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
using bio_ptr = std::unique_ptr<BIO, bio_deleter>;
struct x509_deleter {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
using x509_ptr = std::unique_ptr<X509, x509_deleter>;

// What the listener's files are read through: each failure names the file and what is
// wrong with it.
class file_reader {
  public:
    explicit file_reader(std::string where) : where_{std::move(where)} {}

    [[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) const {
        throw config_error(where_ + ": " + file.string() + ": " + what);
    }

    // The whole file in memory: its errno, not OpenSSL's, says why it cannot be read.
    bio_ptr read(const std::filesystem::path& file, std::string& text) const {
        std::ifstream in{file, std::ios::binary};
        if (!in) fail(file, std::string{"cannot read it: "} + std::strerror(errno));
        std::ostringstream all;
        all << in.rdbuf();
        text = all.str();
        return bio_ptr{BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))};
    }

    // Every certificate in `file` (at least one), in order.
    std::vector<x509_ptr> certificates(const std::filesystem::path& file) const {
        std::string text;
        bio_ptr bio = read(file, text);
        if (text.find("-----BEGIN ") == std::string::npos)
            fail(file, "holds no PEM certificate (no \"-----BEGIN CERTIFICATE-----\" line)");
        std::vector<x509_ptr> out;
        ERR_clear_error();
        for (;;) {
            x509_ptr cert{out.empty() ? PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr)
                                      : PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)};
            if (!cert) break;
            out.push_back(std::move(cert));
        }
        // The end of the file is "no start line" after the last certificate.
        if (!out.empty() && last_error_is_no_pem()) {
            ERR_clear_error();
            return out;
        }
        if (out.empty() && last_error_is_no_pem())
            fail(file, "holds no PEM certificate (no \"-----BEGIN CERTIFICATE-----\" line)");
        fail(file, "is not a readable PEM certificate (" + openssl_reason() + ")");
    }

  private:
    std::string where_;
};

// Asked for a password: the key is encrypted. plugd starts unattended, so it never asks.
int refuse_password(char*, int, int, void* asked) {
    *static_cast<bool*>(asked) = true;
    return -1;
}

// The ALPN protocols of a context, in wire format, owned by the SSL_CTX (freed with it, so
// a connection still handshaking on a context a reload replaced finds them).
void free_alpn(void*, void* p, CRYPTO_EX_DATA*, int, long, void*) {
    delete static_cast<std::string*>(p);
}
int alpn_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, &free_alpn);
    return index;
}

// The server's preference among the protocols the client offers; none in common: the
// handshake fails (no_application_protocol), as RFC 7301 asks.
int select_alpn(SSL* ssl, const unsigned char** out, unsigned char* out_length,
                const unsigned char* offered, unsigned int offered_length, void*) {
    const auto* ours =
        static_cast<const std::string*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alpn_index()));
    if (!ours) return SSL_TLSEXT_ERR_NOACK;
    unsigned char* chosen = nullptr;
    if (SSL_select_next_proto(
            &chosen, out_length, reinterpret_cast<const unsigned char*>(ours->data()),
            static_cast<unsigned>(ours->size()), offered, offered_length) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

}  // namespace

tls_context::tls_context(const std::string& listener, const tls_settings& settings,
                         const std::string& where) {
    const file_reader files{where};
    ctx_ = SSL_CTX_new(TLS_server_method());
    if (!ctx_) throw config_error(where + ": cannot make a TLS context: " + openssl_reason());
    try {
        SSL_CTX_set_min_proto_version(ctx_, settings.tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
        SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                      SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
        // Idle connections give OpenSSL's read and write buffers back (about 34 KiB each);
        // writes may end after whole records, and their retries may start from a buffer
        // that moved (a reply string that grew), as the transport's writes need.
        SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                   SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        // One read(2) takes what has arrived, not a record header and then its body: half
        // the reads per request. The transport asks SSL_has_pending before it waits, so
        // records read ahead are never left waiting for a readiness event.
        SSL_CTX_set_read_ahead(ctx_, 1);
        const std::string ciphers =
            settings.ciphers.empty() ? default_tls12_ciphers : settings.ciphers;
        if (SSL_CTX_set_cipher_list(ctx_, ciphers.c_str()) != 1)
            throw config_error(where + "/ciphers: \"" + ciphers +
                               "\" names no cipher this OpenSSL offers (" + openssl_reason() +
                               "); see `openssl ciphers -v`");
        if (!settings.ciphersuites.empty() &&
            SSL_CTX_set_ciphersuites(ctx_, settings.ciphersuites.c_str()) != 1)
            throw config_error(where + "/ciphersuites: \"" + settings.ciphersuites +
                               "\" is not a list of TLS 1.3 suites this OpenSSL offers (" +
                               openssl_reason() + "), such as TLS_AES_128_GCM_SHA256");

        // The certificate and its chain.
        auto chain = files.certificates(settings.certificate);
        if (SSL_CTX_use_certificate(ctx_, chain.front().get()) != 1)
            files.fail(settings.certificate,
                       "cannot be used as the server's certificate (" + openssl_reason() + ")");
        for (std::size_t i = 1; i < chain.size(); ++i) {
            if (SSL_CTX_add1_chain_cert(ctx_, chain[i].get()) != 1)
                files.fail(settings.certificate, "certificate " + std::to_string(i + 1) +
                                                     " of the chain cannot be used (" +
                                                     openssl_reason() + ")");
        }
        const X509* leaf = chain.front().get();
        facts_ = certificate_facts::of(leaf);
        subject_ = facts_.subject;
        not_after_ =
            std::chrono::system_clock::from_time_t(static_cast<std::time_t>(facts_.not_after_unix));

        // The private key: unencrypted, and the certificate's.
        {
            std::string text;
            bio_ptr bio = files.read(settings.private_key, text);
            if (text.find("-----BEGIN ") == std::string::npos)
                files.fail(settings.private_key,
                           "holds no PEM private key (no \"-----BEGIN ... PRIVATE KEY-----\" "
                           "line)");
            bool asked = false;
            ERR_clear_error();
            EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, &refuse_password, &asked);
            if (!key) {
                if (asked)
                    files.fail(settings.private_key,
                               "is encrypted (it needs a password, and plugd asks for none); "
                               "store it unencrypted, readable only by plugd's user: openssl "
                               "pkey -in " +
                                   settings.private_key.string() + " -out key.pem");
                if (last_error_is_no_pem())
                    files.fail(settings.private_key,
                               "holds no PEM private key (no \"-----BEGIN ... PRIVATE KEY-----\" "
                               "line)");
                files.fail(settings.private_key,
                           "is not a readable PEM private key (" + openssl_reason() + ")");
            }
            const int used = SSL_CTX_use_PrivateKey(ctx_, key);
            EVP_PKEY_free(key);
            if (used != 1 || SSL_CTX_check_private_key(ctx_) != 1) {
                ERR_clear_error();
                files.fail(settings.private_key, "does not match the certificate in " +
                                                     settings.certificate.string() +
                                                     " (a key and certificate of different "
                                                     "pairs: install both files of one pair)");
            }
        }

        // Client certificates: required, and verified against client_ca.
        if (!settings.client_ca.empty()) {
            auto cas = files.certificates(settings.client_ca);
            X509_STORE* store = SSL_CTX_get_cert_store(ctx_);
            for (auto& ca : cas) {
                if (X509_STORE_add_cert(store, ca.get()) != 1 ||
                    SSL_CTX_add_client_CA(ctx_, ca.get()) != 1)
                    files.fail(settings.client_ca,
                               "a CA certificate cannot be used (" + openssl_reason() + ")");
            }
            SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        }

        // ALPN.
        if (!settings.alpn.empty()) {
            auto wire = std::make_unique<std::string>();
            for (const auto& p : settings.alpn) {
                wire->push_back(static_cast<char>(p.size()));
                *wire += p;
            }
            if (SSL_CTX_set_ex_data(ctx_, alpn_index(), wire.get()) != 1)
                throw config_error(where +
                                   "/alpn: cannot keep the protocol list: " + openssl_reason());
            wire.release();
            SSL_CTX_set_alpn_select_cb(ctx_, &select_alpn, nullptr);
        }

        // Resumption: stateless tickets (TLS 1.3 and 1.2) under keys every thread and
        // worker shares (tls/ticket_keys); no server-side cache, whose lock every thread
        // would share. A ticket resumes only on the listener (and client CA) that issued it.
        SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
        unsigned char id[EVP_MAX_MD_SIZE];
        unsigned int id_length = 0;
        const std::string scope = "plugd listener " + listener + "\n" + settings.client_ca.string();
        EVP_Digest(scope.data(), scope.size(), id, &id_length, EVP_sha256(), nullptr);
        SSL_CTX_set_session_id_context(ctx_, id, std::min(id_length, 32u));
        use_rotating_ticket_keys(ctx_, settings.ticket_key_rotation);
    } catch (...) {
        SSL_CTX_free(ctx_);
        ERR_clear_error();
        throw;
    }
    warn_if_expiring_soon(listener, settings.certificate.string(), facts_);
}

tls_context::~tls_context() {
    SSL_CTX_free(ctx_);  // connections still using it hold their own references
}

std::shared_ptr<const tls_context> make_tls_context(const server_config& cfg,
                                                    const listener_spec& listener) {
    if (!listener.tls) return nullptr;
    std::string where = cfg.source.empty() ? std::string{"<built-in>"} : cfg.source.string();
    for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
        if (cfg.listeners[i].name == listener.name)
            where += ": /listeners/" + std::to_string(i) + "/tls";
    }
    return std::make_shared<const tls_context>(listener.name, *listener.tls, where);
}

}  // namespace plugd
