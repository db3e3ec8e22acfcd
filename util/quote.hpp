#pragma once
// Untrusted strings in error messages. A key, id or token read from a file may hold a newline
// (which would split kvbench's one-line errors), terminal escape codes, or megabytes of text;
// quote() renders it inside double quotes with \n, \t, \r, \", \\ and \xNN escapes for every
// other control byte (and DEL), cut to at most `max_bytes` of the original (never inside a UTF-8
// sequence), with the length said when cut: "abc..." (12345 bytes).
#include <cstddef>
#include <string>
#include <string_view>

namespace kvb {

std::string quote(std::string_view text, size_t max_bytes = 80);

// A whole message made safe to print as one line (cli/main.cpp does, for every error): the same
// escapes as quote(), no quotes added, cut at `max_bytes`. The last guard: parsers quote what
// they repeat, but a message built from many parts must still never split or drive a terminal.
std::string one_line(std::string_view message, size_t max_bytes = 4096);

}  // namespace kvb
