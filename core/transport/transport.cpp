// transport: plain TCP (TLS: tls_session.cpp).
#include "transport/transport.hpp"

namespace plugd {

std::string format_endpoint(const boost::asio::ip::tcp::endpoint& endpoint) {
    // Appended piece by piece: GCC 12 warns falsely (-Wstringop-overflow) about
    // "[" + std::string here.
    const auto address = endpoint.address();
    std::string text;
    if (address.is_v6()) text += '[';
    text += address.to_string();
    if (address.is_v6()) text += ']';
    text += ':';
    text += std::to_string(endpoint.port());
    return text;
}

void client_transport::prepare() noexcept {
    boost::system::error_code ignored;
    socket_.set_option(boost::asio::ip::tcp::no_delay{true}, ignored);
    socket_.non_blocking(true, ignored);
}

std::string client_transport::peer() const {
    boost::system::error_code ec;
    const auto endpoint = socket_.remote_endpoint(ec);
    return ec ? "unknown" : format_endpoint(endpoint);
}

bool client_transport::readable_now() noexcept {
    if (tls_ && tls_pending()) return true;  // decrypted or buffered bytes OpenSSL holds
    char probe;
    boost::system::error_code ec;
    socket_.receive(boost::asio::buffer(&probe, 1), socket_type::message_peek, ec);
    return ec != boost::asio::error::would_block;
}

void client_transport::cancel() noexcept {
    boost::system::error_code ignored;
    socket_.cancel(ignored);
}

void client_transport::shutdown_send() noexcept {
    if (tls_) tls_shutdown();
    boost::system::error_code ignored;
    socket_.shutdown(socket_type::shutdown_send, ignored);
}

void client_transport::shutdown() noexcept {
    if (tls_) tls_shutdown();
    boost::system::error_code ignored;
    socket_.shutdown(socket_type::shutdown_both, ignored);
}

client_transport::~client_transport() {
    if (tls_) tls_free();
}

void client_transport::close() noexcept {
    if (tls_) tls_shutdown();
    boost::system::error_code ignored;
    socket_.shutdown(socket_type::shutdown_both, ignored);
    socket_.close(ignored);
}

}  // namespace plugd
