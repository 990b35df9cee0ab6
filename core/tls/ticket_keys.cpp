// ticket_keys: the process's ticket secret, the keys derived from it per rotation period,
// and OpenSSL's ticket callback that uses them.
#include "tls/ticket_keys.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "log.hpp"

namespace plugd {
namespace {

struct secret {
    unsigned char bytes[32];
    bool random = false;
};

// This process's: random, until a worker adopts its master's.
secret& process_secret() {
    static secret s = [] {
        secret made;
        made.random = RAND_bytes(made.bytes, sizeof made.bytes) == 1;
        return made;
    }();
    return s;
}

// One period's keys: the name a ticket carries, AES-256-CBC's key and HMAC-SHA256's key
// (what OpenSSL's own ticket format uses).
struct key_set {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

// HMAC-SHA256(secret, label | rotation | period): every process with the secret gets the
// same keys, and nothing of one period tells anything of another.
void derive(key_set& keys, std::int64_t rotation_ms, std::int64_t period) {
    const secret& s = process_secret();
    auto part = [&](const char* label, unsigned char* out, std::size_t length) {
        std::string input = std::string{"plugd ticket "} + label + ' ' +
                            std::to_string(rotation_ms) + ' ' + std::to_string(period);
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int digest_length = 0;
        HMAC(EVP_sha256(), s.bytes, sizeof s.bytes,
             reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest,
             &digest_length);
        std::memcpy(out, digest, length);
    };
    part("name", keys.name, sizeof keys.name);
    part("aes", keys.aes, sizeof keys.aes);
    part("hmac", keys.hmac, sizeof keys.hmac);
}

// The keys of the current and previous period, per thread: derived again only when the
// period (or the listener's rotation) changes.
struct period_keys {
    std::int64_t rotation_ms = 0;
    std::int64_t period = -1;
    key_set current;
    key_set previous;
};

const period_keys& keys_now(std::int64_t rotation_ms) {
    thread_local period_keys cached;
    const std::int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
    const std::int64_t period = now_ms / rotation_ms;
    if (cached.period != period || cached.rotation_ms != rotation_ms) {
        cached.rotation_ms = rotation_ms;
        cached.period = period;
        derive(cached.current, rotation_ms, period);
        derive(cached.previous, rotation_ms, period - 1);
    }
    return cached;
}

int rotation_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

bool use_keys(const key_set& keys, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
              bool encrypt) {
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(keys.hmac),
                                          sizeof keys.hmac),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end()};
    const int initialised =
        encrypt ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, keys.aes, iv)
                : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, keys.aes, iv);
    return initialised == 1 && EVP_MAC_CTX_set_params(mac, params) == 1;
}

// OpenSSL's ticket callback. Encrypting: the current key, a fresh IV. Decrypting: 1 for
// the current key, 2 for the previous one (accepted, and a new ticket issued), 0 for a key
// no longer known (a full handshake follows), -1 on an error.
int ticket_callback(SSL* ssl, unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                    EVP_MAC_CTX* mac, int encrypt) {
    const auto rotation_ms = static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(
        SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), rotation_index())));
    if (rotation_ms <= 0) return -1;
    const period_keys& keys = keys_now(rotation_ms);
    if (encrypt) {
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) return -1;
        std::memcpy(key_name, keys.current.name, sizeof keys.current.name);
        return use_keys(keys.current, iv, cipher, mac, true) ? 1 : -1;
    }
    if (std::memcmp(key_name, keys.current.name, sizeof keys.current.name) == 0)
        return use_keys(keys.current, iv, cipher, mac, false) ? 1 : -1;
    if (std::memcmp(key_name, keys.previous.name, sizeof keys.previous.name) == 0)
        return use_keys(keys.previous, iv, cipher, mac, false) ? 2 : -1;
    return 0;
}

}  // namespace

void use_rotating_ticket_keys(ssl_ctx_st* ctx, std::chrono::milliseconds rotation) {
    if (!process_secret().random) {
        // Without a secret no ticket could be trusted: leave resumption off, loudly.
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
        log::warn(
            "TLS: no random secret for session tickets (the system's random source "
            "failed); sessions do not resume");
        return;
    }
    SSL_CTX_set_ex_data(ctx, rotation_index(),
                        reinterpret_cast<void*>(static_cast<std::intptr_t>(rotation.count())));
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &ticket_callback);
    // Tickets outlive no key: a client keeps one at most a period, and a key decrypts for
    // one to two periods.
    SSL_CTX_set_timeout(ctx, std::max<long>(1, static_cast<long>(rotation.count() / 1000)));
}

int ticket_secret_file() {
    static const int fd = [] {
        const int made = ::memfd_create("plugd-ticket-secret", MFD_CLOEXEC);
        const secret& s = process_secret();
        if (made >= 0 && s.random && ::write(made, s.bytes, sizeof s.bytes) == sizeof s.bytes)
            return made;
        log::warn(std::string{"master: cannot share the session ticket secret with the "
                              "workers ("} +
                  (made < 0 ? std::strerror(errno) : "no secret") +
                  "); a TLS session resumes only on the worker that issued its ticket");
        if (made >= 0) ::close(made);
        return -1;
    }();
    return fd;
}

void adopt_ticket_secret(int fd) {
    secret& s = process_secret();
    unsigned char bytes[sizeof s.bytes];
    const ssize_t got = ::pread(fd, bytes, sizeof bytes, 0);
    ::close(fd);
    if (got != static_cast<ssize_t>(sizeof bytes))
        throw std::runtime_error("cannot read the master's session ticket secret from descriptor " +
                                 std::to_string(fd) + ": restart plugd");
    std::memcpy(s.bytes, bytes, sizeof bytes);
    s.random = true;
}

}  // namespace plugd
