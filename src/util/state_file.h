// Small files the server rewrites whole (the familiar addresses, detect/familiar_addresses.h):
// written so that a crash or a full disk leaves either the old file or the new one, never half.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "util/result.h"

namespace poplar::util {

// Writes `text` to a temporary file beside `path` (mode 0600), fsyncs it, renames it over
// `path` and fsyncs the directory. The error says which step failed and why; the old file is
// then untouched.
result<void, std::string> write_file_atomically(const std::filesystem::path& path, std::string_view text);

// The whole file; nullopt when it does not exist; an error for anything else.
result<std::optional<std::string>, std::string> read_file_if_exists(const std::filesystem::path& path);

}  // namespace poplar::util
