// Unicode canonical normalization (NFC, NFD) without ICU: the tables are generated from the Unicode
// Character Database (gen_unicode_tables.py -> UnicodeTables.inc). Qwen's tokenizer.json applies
// NFC before splitting, so this must agree with Rust's unicode-normalization crate for those
// inputs.
#pragma once

#include <string>
#include <string_view>

namespace kt::tok::unicode {

// Canonical combining class of a code point (0 for starters).
int combiningClass(char32_t cp);

// Both take and return valid UTF-8. Text that is already normalized (the common case: ASCII and
// most prose) is detected with the quick-check property and returned unchanged without copying
// into a code point buffer.
std::string nfc(std::string_view s);
std::string nfd(std::string_view s);

// True when nfc(s) == s, via the NFC_QC quick check (conservative: may say false for some
// normalized strings containing "Maybe" characters, never true for an unnormalized one).
bool isNfcQuick(std::string_view s);

} // namespace kt::tok::unicode
