#pragma once
// JSON Schema patterns are ECMA-262 regular expressions; the gateway runs them with RE2, which
// guarantees linear time and so cannot be made to backtrack catastrophically. This translates
// the ECMA syntax to RE2's, keeping ECMA's meaning where the two differ, and refuses what RE2
// cannot express rather than letting it match differently at run time.
//
// Meaning kept: `.` excludes \n, \r, U+2028 and U+2029; \s and \S use ECMA's Unicode white-space
// set; [^] matches anything and [] nothing; \uXXXX (surrogate pairs joined), \u{X...}, \xHH, \cX
// and \0 become code points; \p{...} with ECMA's long general-category names (Letter,
// Decimal_Number, ...) and Script= / General_Category= prefixes maps to RE2's short names;
// (?<name>...) becomes (?P<name>...). Matching is by code point (ECMA's `u` flag).
// Refused: backreferences (\1, \k<name>), lookahead and lookbehind, unknown letter escapes,
// lone surrogates, and anything RE2 itself rejects (repetition counts over 1000, for instance).

#include <optional>
#include <string>
#include <string_view>

namespace portcullis::validate {

// The RE2 syntax for an ECMA-262 pattern, or nullopt with `error` saying what cannot be
// translated. Compile the result with RE2's UTF-8 default options.
std::optional<std::string> ecma_to_re2(std::string_view pattern, std::string& error);

}  // namespace portcullis::validate
