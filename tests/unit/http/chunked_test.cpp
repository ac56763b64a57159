#include "portcullis/http/chunked.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace portcullis::http {
namespace {

using core::Reason;
using namespace std::literals;

struct Decoded {
  std::string payload;
  bool done = false;
  Reason error = Reason::none;
  std::size_t consumed = 0;  // of the whole input, when done
  std::size_t pieces = 0;
};

// Delivers `input` in the pieces given by `cuts` the way a connection does: the caller keeps
// the unconsumed rest and appends the next bytes to it.
Decoded decode(std::string_view input, const std::vector<std::size_t>& cuts,
               std::size_t max_trailer = 8 * 1024) {
  ChunkedDecoder decoder(max_trailer);
  Decoded out;
  std::string pending;
  std::size_t delivered = 0;
  std::size_t consumed_total = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(input.size());
  for (const std::size_t end : ends) {
    pending.append(input.substr(delivered, end - delivered));
    delivered = end;
    std::size_t offset = 0;
    for (;;) {
      const std::string_view rest = std::string_view(pending).substr(offset);
      const ChunkedStep step = decoder.step(rest);
      EXPECT_LE(step.consumed, rest.size());
      if (!step.data.empty()) {
        // zero copy: the data lies inside the input given to step()
        EXPECT_GE(step.data.data(), rest.data());
        EXPECT_LE(step.data.data() + step.data.size(), rest.data() + rest.size());
        out.payload.append(step.data);
        ++out.pieces;
      }
      offset += step.consumed;
      consumed_total += step.consumed;
      if (step.error != Reason::none) {
        out.error = step.error;
        return out;
      }
      if (step.done) {
        out.done = true;
        out.consumed = consumed_total;
        EXPECT_EQ(decoder.payload_bytes(), out.payload.size());
        return out;
      }
      if (step.data.empty() && step.consumed == rest.size()) break;  // needs more input
    }
    pending.erase(0, offset);
  }
  return out;
}

Decoded decode_whole(std::string_view input, std::size_t max_trailer = 8 * 1024) {
  return decode(input, {}, max_trailer);
}

// Every split into two pieces, and byte by byte, must give the same answer as the whole.
Decoded decode_all_ways(std::string_view input, std::size_t max_trailer = 8 * 1024) {
  const Decoded whole = decode_whole(input, max_trailer);
  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    const Decoded split = decode(input, {cut}, max_trailer);
    EXPECT_EQ(split.payload, whole.payload) << "cut at " << cut;
    EXPECT_EQ(split.done, whole.done) << "cut at " << cut;
    EXPECT_EQ(split.error, whole.error) << "cut at " << cut;
    if (whole.done) {
      EXPECT_EQ(split.consumed, whole.consumed) << "cut at " << cut;
    }
  }
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < input.size(); ++i)
    every.push_back(i);
  const Decoded bytes = decode(input, every, max_trailer);
  EXPECT_EQ(bytes.payload, whole.payload);
  EXPECT_EQ(bytes.done, whole.done);
  EXPECT_EQ(bytes.error, whole.error);
  return whole;
}

void expect_payload(std::string_view input, std::string_view payload) {
  SCOPED_TRACE(testing::PrintToString(std::string(input)));
  const Decoded d = decode_all_ways(input);
  EXPECT_EQ(d.error, Reason::none);
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.payload, payload);
  EXPECT_EQ(d.consumed, input.size());
}

void expect_bad(std::string_view input, std::size_t max_trailer = 8 * 1024) {
  SCOPED_TRACE(testing::PrintToString(std::string(input)));
  const Decoded d = decode_all_ways(input, max_trailer);
  EXPECT_EQ(d.error, Reason::bad_chunk);
  EXPECT_FALSE(d.done);
}

TEST(Chunked, SimpleBody) {
  expect_payload("5\r\nhello\r\n0\r\n\r\n", "hello");
  expect_payload("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
  expect_payload("0\r\n\r\n", "");
  expect_payload("A\r\n0123456789\r\n0\r\n\r\n", "0123456789");
  expect_payload("a\r\n0123456789\r\n00\r\n\r\n", "0123456789");
  expect_payload("0000000000000005\r\nhello\r\n0\r\n\r\n", "hello");  // 16 digits
}

TEST(Chunked, BinaryPayloadIsOpaque) {
  const std::string payload("\r\n0\r\n\r\n\0\xff"sv);
  expect_payload("9\r\n" + payload + "\r\n0\r\n\r\n", payload);
}

TEST(Chunked, OneDataPiecePerStep) {
  ChunkedDecoder decoder;
  const std::string input = "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
  auto step = decoder.step(input);
  EXPECT_EQ(step.data, "abc");
  EXPECT_EQ(step.consumed, 6u);
  EXPECT_FALSE(step.done);
  EXPECT_EQ(step.data.data(), input.data() + 3);
  std::string_view rest = std::string_view(input).substr(step.consumed);
  step = decoder.step(rest);
  EXPECT_EQ(step.data, "def");
  rest.remove_prefix(step.consumed);
  step = decoder.step(rest);
  EXPECT_TRUE(step.done);
  EXPECT_TRUE(step.data.empty());
  EXPECT_EQ(step.consumed, rest.size());
  EXPECT_EQ(decoder.payload_bytes(), 6u);
  // once done, stays done and consumes nothing
  step = decoder.step("more");
  EXPECT_TRUE(step.done);
  EXPECT_EQ(step.consumed, 0u);
}

TEST(Chunked, StopsAtTheEndOfTheMessage) {
  const std::string body = "2\r\nhi\r\n0\r\n\r\n";
  const Decoded d = decode_whole(body + "GET / HTTP/1.1\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.consumed, body.size());
  EXPECT_EQ(d.payload, "hi");
}

TEST(Chunked, PartialData) {
  ChunkedDecoder decoder;
  auto step = decoder.step("a\r\n0123");
  EXPECT_EQ(step.data, "0123");
  EXPECT_EQ(step.consumed, 7u);
  step = decoder.step("");
  EXPECT_EQ(step.consumed, 0u);
  EXPECT_TRUE(step.data.empty());
  EXPECT_FALSE(step.done);
  step = decoder.step("456789\r\n0\r\n\r\n");
  EXPECT_EQ(step.data, "456789");
  EXPECT_EQ(decoder.payload_bytes(), 10u);
}

TEST(Chunked, BadSizes) {
  expect_bad("\r\nhello\r\n0\r\n\r\n");
  expect_bad("x\r\n");
  expect_bad("-5\r\nhello\r\n0\r\n\r\n");
  expect_bad("+5\r\nhello\r\n0\r\n\r\n");
  expect_bad("0x5\r\nhello\r\n0\r\n\r\n");
  expect_bad("00000000000000005\r\nhello\r\n0\r\n\r\n");  // 17 digits
  expect_bad("10000000000000000\r\n");                    // 2^64: overflow
  expect_bad("5 \r\nhello\r\n0\r\n\r\n");
  expect_bad(" 5\r\nhello\r\n0\r\n\r\n");
  expect_bad("5\nhello\r\n0\r\n\r\n");
  expect_bad("5\rhello\r\n0\r\n\r\n");
  expect_bad("5\r\nhello\r\n0\n\r\n");
  expect_bad("5\x00\r\nhello"sv);
}

TEST(Chunked, HugeSizeIsAcceptedAsASize) {
  ChunkedDecoder decoder;
  const auto step = decoder.step("ffffffffffffffff\r\nab");
  EXPECT_EQ(step.error, Reason::none);
  EXPECT_EQ(step.data, "ab");
}

TEST(Chunked, DataMustEndWithCrlf) {
  expect_bad("5\r\nhelloX\r\n0\r\n\r\n");
  expect_bad("5\r\nhello\n0\r\n\r\n");
  expect_bad("5\r\nhello\r0\r\n\r\n");
  expect_bad("5\r\nhello world\r\n0\r\n\r\n");  // TE.CL style: more data than announced
  expect_bad("5\r\nhello\r\n\r\n");             // missing last chunk
}

TEST(Chunked, Extensions) {
  expect_payload("5;foo\r\nhello\r\n0\r\n\r\n", "hello");
  expect_payload("5;foo=bar\r\nhello\r\n0;last\r\n\r\n", "hello");
  expect_payload("5;a;b=c;d=\"q \\\" ;\\\\ x\"\r\nhello\r\n0\r\n\r\n", "hello");
  expect_payload("5 ;foo = bar\r\nhello\r\n0\r\n\r\n", "hello");     // BWS
  expect_payload("5\t; foo=bar ;x\r\nhello\r\n0\r\n\r\n", "hello");  // BWS
  expect_payload("5;foo=\"\"\r\nhello\r\n0\r\n\r\n", "hello");
  expect_payload("5;foo=\"caf\xC3\xA9\"\r\nhello\r\n0\r\n\r\n", "hello");
  expect_bad("5;\r\nhello\r\n0\r\n\r\n");
  expect_bad("5;=x\r\nhello\r\n0\r\n\r\n");
  expect_bad("5;foo=\r\nhello\r\n0\r\n\r\n");
  expect_bad("5;foo=bar=baz\r\nhello\r\n0\r\n\r\n");
  expect_bad("5;foo=\"open\r\nhello\r\n0\r\n\r\n");
  expect_bad("5;foo=\"a\"b\r\nhello\r\n0\r\n\r\n");
  expect_bad("5;fo(o\r\nhello\r\n0\r\n\r\n");
  expect_bad("5;foo\x01\r\nhello\r\n0\r\n\r\n");
  expect_bad("5;foo=\"a\x01\"\r\nhello\r\n0\r\n\r\n");
  expect_bad("5;foo \r\nhello\r\n0\r\n\r\n");
  expect_bad("5;foo\nhello\r\n0\r\n\r\n");
  expect_bad("5 x\r\nhello\r\n0\r\n\r\n");
}

TEST(Chunked, ExtensionsAreCapped) {
  std::string ok = "5;x=" + std::string(4096 - 3, 'a') + "\r\nhello\r\n0\r\n\r\n";
  EXPECT_TRUE(decode_whole(ok).done);
  std::string too_long = "5;x=" + std::string(4096 - 2, 'a') + "\r\nhello\r\n0\r\n\r\n";
  EXPECT_EQ(decode_whole(too_long).error, Reason::bad_chunk);
}

TEST(Chunked, Trailers) {
  expect_payload("5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n", "hello");
  expect_payload("0\r\nA: 1\r\nB:\r\nC: \xff x\t\r\n\r\n", "");
  expect_bad("0\r\nX-Checksum : abc\r\n\r\n");
  expect_bad("0\r\n: abc\r\n\r\n");
  expect_bad("0\r\nNoColon\r\n\r\n");
  expect_bad("0\r\nA: 1\r\n folded\r\n\r\n");
  expect_bad("0\r\n\tA: 1\r\n\r\n");
  expect_bad("0\r\nA: 1\n\r\n");
  expect_bad("0\r\nA: 1\r\n\n");
  expect_bad("0\r\nA: \x01\r\n\r\n");
  expect_bad("0\r\nA: \x7f\r\n\r\n");
  expect_bad("0\r\nA: 1\rB\r\n\r\n");
  expect_bad("0\r\n\rX");
}

TEST(Chunked, TrailerSizeBoundary) {
  const std::string line = "X-T: " + std::string(13, 'v') + "\r\n";  // 20 bytes
  ASSERT_EQ(line.size(), 20u);
  const std::string body = "0\r\n" + line + "\r\n";
  EXPECT_TRUE(decode_all_ways(body, 20).done);
  expect_bad(body, 19);
  EXPECT_TRUE(decode_whole("0\r\n" + line + line + "\r\n", 40).done);
  EXPECT_EQ(decode_whole("0\r\n" + line + line + "\r\n", 39).error, Reason::bad_chunk);
}

TEST(Chunked, ErrorIsSticky) {
  ChunkedDecoder decoder;
  EXPECT_EQ(decoder.step("g").error, Reason::bad_chunk);
  EXPECT_EQ(decoder.step("5\r\nhello").error, Reason::bad_chunk);
  decoder.reset();
  EXPECT_EQ(decoder.step("5\r\nhello").data, "hello");
}

TEST(Chunked, ResetStartsOver) {
  ChunkedDecoder decoder;
  EXPECT_TRUE(decoder.step("0\r\n\r\n").done);
  decoder.reset();
  EXPECT_EQ(decoder.payload_bytes(), 0u);
  EXPECT_EQ(decoder.step("2\r\nok").data, "ok");
  decoder.reset();
  EXPECT_EQ(decoder.step("3\r\nabc").data, "abc");
}

TEST(Chunked, FormatChunkSize) {
  char out[24];
  EXPECT_EQ(std::string_view(out, format_chunk_size(0, out)), "0\r\n");
  EXPECT_EQ(std::string_view(out, format_chunk_size(255, out)), "ff\r\n");
  EXPECT_EQ(std::string_view(out, format_chunk_size(4096, out)), "1000\r\n");
  EXPECT_EQ(std::string_view(out, format_chunk_size(UINT64_MAX, out)), "ffffffffffffffff\r\n");
}

TEST(Chunked, FormatRoundTrips) {
  std::string wire;
  std::string payload;
  char size[24];
  for (const std::size_t n : {1u, 15u, 16u, 300u}) {
    const std::string piece(n, static_cast<char>('a' + n % 26));
    wire.append(size, format_chunk_size(piece.size(), size));
    wire += piece + "\r\n";
    payload += piece;
  }
  wire.append(size, format_chunk_size(0, size));
  wire += "\r\n";
  const Decoded d = decode_whole(wire);
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.payload, payload);
}

}  // namespace
}  // namespace portcullis::http
