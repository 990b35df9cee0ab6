// buffered_connection: a connection's closed state.
#include "serving/buffered_connection.hpp"

#include <stdexcept>

namespace plugd {

void buffered_connection::check_open() const {
    if (closed_) {
        throw std::runtime_error("connection from " + std::string{peer()} +
                                 " used after close(); its serve() should return");
    }
}

std::string buffered_connection::describe() const {
    return "connection from " + std::string{peer()};
}

}  // namespace plugd
