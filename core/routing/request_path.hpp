// request_path: what routes match an HTTP request on: its host and its normalised path.
//
// Routes compare paths after normalisation, as nginx's locations do, so that a filter in
// front of "/admin/" cannot be walked around with "/%61dmin/", "/x/../admin/" or
// "//admin/": the path is percent-decoded, "." and ".." segments are resolved and repeated
// slashes merged before any route looks at it.
#pragma once

#include <string>
#include <string_view>

namespace plugd {

/// Writes the normalised path of `target` (origin form "/a/b?q", or absolute form
/// "http://host/a/b?q") to `out`, followed by '?' and the percent-decoded query when there
/// is one, and returns the length of the path part. Returns std::string_view::npos when
/// the target cannot be normalised: a bad or NUL escape, ".." above the root, or a target
/// that is neither form (the request gets 400). `out` is reused: no allocation once it has
/// grown to the usual target size.
std::size_t normalize_target(std::string_view target, std::string& out);

/// The host a request is for, lower case and without its port: an absolute-form target's
/// authority, else the Host field's value (`host_field`). Written to `buffer` only when it
/// has to be lowered; empty when there is none.
std::string_view request_host(std::string_view target, std::string_view host_field,
                              std::string& buffer);

}  // namespace plugd
