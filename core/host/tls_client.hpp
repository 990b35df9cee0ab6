// tls_client: OpenSSL for outbound connections, behind a header that does not include it.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <plugd/tls_options.hpp>

struct ssl_st;
struct ssl_ctx_st;

namespace plugd {

/// The TLS state of one outbound connection, driven over its non-blocking socket: each
/// call does what it can without waiting and says what it waits for next, so the caller
/// (outbound's stream) awaits the socket and its deadline, not OpenSSL. No read or write
/// buffer of its own beyond OpenSSL's, which are released while the connection is idle.
class tls_link {
  public:
    enum class step { done, want_read, want_write, closed };

    tls_link() noexcept = default;
    tls_link(tls_link&& other) noexcept;
    tls_link& operator=(tls_link&& other) noexcept;
    ~tls_link();

    explicit operator bool() const noexcept { return ssl_ != nullptr; }

    // Each throws boost::system::system_error whose message starts with `where` and says
    // what failed ("TLS handshake: certificate verify failed: hostname mismatch").
    step handshake(const std::string& where);
    /// `n`: bytes read when done; closed: the peer ended the connection.
    step read(char* data, std::size_t size, std::size_t& n, const std::string& where);
    /// `n`: bytes written when done (all of them). After want_*, call again with the same
    /// arguments.
    step write(const char* data, std::size_t size, std::size_t& n, const std::string& where);

    /// A pooled connection about to be reused: consumes what arrived meanwhile (TLS 1.3
    /// session tickets); false when the peer closed it or sent application data.
    bool still_usable() noexcept;
    /// Sends close_notify if that needs no waiting; the socket is closed after it anyway.
    void close_notify() noexcept;

  private:
    friend class tls_client_contexts;
    explicit tls_link(ssl_st* ssl) noexcept : ssl_{ssl} {}
    ssl_st* ssl_ = nullptr;
};

/// The OpenSSL contexts (trusted CAs, client certificate) of one plugin version's outbound
/// connections, one per distinct set of files, made on first use and kept for the version:
/// loading a CA store costs milliseconds, a connection must not pay it. Thread-safe.
class tls_client_contexts {
  public:
    /// `relative_to`: the directory relative file names are resolved against; empty: the
    /// working directory.
    explicit tls_client_contexts(std::filesystem::path relative_to);
    ~tls_client_contexts();
    tls_client_contexts(const tls_client_contexts&) = delete;
    tls_client_contexts& operator=(const tls_client_contexts&) = delete;

    /// A TLS client over socket `fd` (non-blocking, connected), for `host` unless
    /// `options.server_name` names another. Throws boost::system::system_error starting
    /// with `where` when a file cannot be used (naming it and what is wrong).
    tls_link open(int fd, const tls_options& options, const std::string& host,
                  const std::string& where);

    /// What tells two option sets apart for the pool (the resolved files and the name).
    std::string pool_key(const tls_options& options) const;

  private:
    struct context_deleter {
        void operator()(ssl_ctx_st* ctx) const noexcept;
    };
    using context_ptr = std::unique_ptr<ssl_ctx_st, context_deleter>;
    std::filesystem::path resolve(const std::string& file) const;
    ssl_ctx_st* context_for(const tls_options& options, const std::string& where);

    std::filesystem::path relative_to_;
    std::mutex mutex_;
    std::map<std::string, context_ptr> contexts_;  ///< by pool_key without the name
};

}  // namespace plugd
