// tls_context: one TLS listener's OpenSSL setup (SSL_CTX) for one generation.
//
// Built on the control thread when a generation is prepared (start, each reload, and -t),
// from the files tls_settings names: reading them then is what makes a reload rotate the
// certificate, and a file that cannot be used refuses the reload (or -t) before anything
// serves with it. Shards start each new connection's handshake on the context their
// listener holds now; a connection keeps the context it started with (its SSL object
// holds a reference), so a reload never disturbs an open connection.
//
// Only this folder's .cpp files and the TLS part of transport/ include OpenSSL.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "config.hpp"
#include "tls/certificate_facts.hpp"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace plugd {

class tls_context {
  public:
    /// Reads and checks `settings`' files for the listener `listener`; `where` names it in
    /// messages ("server.json: /listeners/0/tls"). Throws config_error naming the file and
    /// what is wrong with it (unreadable, not PEM, an encrypted key, a key that does not
    /// match the certificate, a cipher list OpenSSL does not know).
    tls_context(const std::string& listener, const tls_settings& settings,
                const std::string& where);
    ~tls_context();
    tls_context(const tls_context&) = delete;
    tls_context& operator=(const tls_context&) = delete;

    ssl_ctx_st* native() const noexcept { return ctx_; }
    /// The certificate's subject (RFC 2253) and when it expires.
    const std::string& subject() const noexcept { return subject_; }
    std::chrono::system_clock::time_point not_after() const noexcept { return not_after_; }
    /// Subject, SANs, expiry and serial of the certificate: what /status reports.
    const certificate_facts& facts() const noexcept { return facts_; }

  private:
    ssl_ctx_st* ctx_ = nullptr;
    std::string subject_;
    std::chrono::system_clock::time_point not_after_;
    certificate_facts facts_;
};

/// The context of every TLS listener of `cfg`, or null for a plaintext one: what -t checks
/// and what a generation serves with. Throws config_error as tls_context does.
std::shared_ptr<const tls_context> make_tls_context(const server_config& cfg,
                                                    const listener_spec& listener);

}  // namespace plugd
