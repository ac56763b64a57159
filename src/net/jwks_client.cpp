#include "portcullis/net/jwks_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/url/parse.hpp>
#include <future>

#include "portcullis/http/chunked.hpp"
#include "portcullis/http/response_parser.hpp"
#include "portcullis/io/stream.hpp"
#include "portcullis/io/tls_context.hpp"

namespace portcullis::net {
namespace {

namespace asio = boost::asio;
using io::ClientTlsContext;
using io::error_code;
using io::Stream;
using io::tcp;

constexpr std::size_t kMaxJwksBytes = 1024 * 1024;

auth::KeySetLoad failed(std::string message) {
  auth::KeySetLoad load;
  load.errors.push_back(std::move(message));
  return load;
}

}  // namespace

std::shared_ptr<RemoteJwks> JwksRegistry::get(const std::string& url,
                                              std::chrono::seconds refresh) {
  std::lock_guard lock(mutex_);
  auto& entry = entries_[url];
  if (!entry) entry = std::make_shared<RemoteJwks>(url, refresh);
  return entry;
}

std::vector<std::shared_ptr<RemoteJwks>> JwksRegistry::all() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<RemoteJwks>> out;
  for (const auto& [url, entry] : entries_)
    out.push_back(entry);
  return out;
}

asio::awaitable<auth::KeySetLoad> fetch_jwks(asio::io_context& io, const std::string& url,
                                             const std::string& ca_file,
                                             std::chrono::milliseconds timeout) {
  const auto parsed = boost::urls::parse_uri(url);
  if (!parsed || parsed->scheme() != "https" || parsed->host().empty()) {
    co_return failed("not an https URL: " + url);
  }
  const std::string host = parsed->host();
  const std::string port = parsed->has_port() ? std::string(parsed->port()) : "443";
  std::string target = parsed->encoded_path().empty() ? "/" : std::string(parsed->encoded_path());
  if (parsed->has_query()) target += "?" + std::string(parsed->encoded_query());

  auto stream = std::make_shared<Stream>(tcp::socket(io));
  asio::steady_timer timer(io);
  timer.expires_after(timeout);
  timer.async_wait([stream](const error_code& ec) {
    if (!ec) stream->cancel();
  });
  struct CancelOnExit {
    asio::steady_timer& timer;
    ~CancelOnExit() { timer.cancel(); }
  } cancel_on_exit{timer};

  error_code ec;
  tcp::resolver resolver(io);
  const auto endpoints =
      co_await resolver.async_resolve(host, port, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return failed("cannot resolve " + host + ": " + ec.message());
  for (const auto& endpoint : endpoints) {
    stream->socket().close(ec);
    co_await stream->socket().async_connect(endpoint,
                                            asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) break;
  }
  if (ec) co_return failed("cannot connect to " + host + ":" + port + ": " + ec.message());
  stream->configure_socket();
  config::UpstreamTls tls;
  tls.enabled = true;
  tls.ca_file = ca_file;
  tls.verify = true;
  ClientTlsContext context(tls, config::Location{url, 0, 0});
  stream->attach_tls(context.new_ssl(host));
  if ((ec = co_await stream->handshake())) {
    co_return failed("TLS with " + host + " failed (certificate or name not verified?)");
  }
  const std::string request = "GET " + target + " HTTP/1.1\r\nHost: " + host +
                              "\r\nAccept: application/json\r\nUser-Agent: portcullis-jwks\r\n"
                              "Connection: close\r\n\r\n";
  if ((ec = co_await stream->write_all(std::string_view(request)))) {
    co_return failed("cannot send the request to " + host + ": " + ec.message());
  }

  std::string received;
  std::vector<char> buffer(16 * 1024);
  http::ResponseParser parser;
  http::ResponseHead head;
  http::ResponseParseResult result;
  for (;;) {
    result = parser.parse(received, false, head);
    if (result.state == http::ParseState::error) co_return failed("malformed response from " + url);
    if (result.state == http::ParseState::complete) break;
    const auto n = co_await stream->read_some(std::span(buffer.data(), buffer.size()), ec);
    if (ec) co_return failed("no response from " + url + ": " + ec.message());
    received.append(buffer.data(), n);
    if (received.size() > kMaxJwksBytes) co_return failed("response too large from " + url);
  }
  if (head.status != 200) co_return failed(url + " answered " + std::to_string(head.status));
  const auto framing = head.framing;
  const auto content_length = head.content_length;
  std::string body = received.substr(result.head_bytes);
  bool done = false;
  http::ChunkedDecoder chunked;
  std::string decoded;
  while (!done) {
    if (framing == http::BodyFraming::content_length) {
      done = body.size() >= content_length;
      if (done) body.resize(content_length);
    } else if (framing == http::BodyFraming::chunked) {
      std::string_view input = body;
      while (!input.empty() && !done) {
        const auto step = chunked.step(input);
        if (step.error != core::Reason::none) co_return failed("bad chunked body from " + url);
        input.remove_prefix(step.consumed);
        decoded.append(step.data);
        done = step.done;
      }
      body.clear();
    } else if (framing == http::BodyFraming::none) {
      done = true;
    }
    if (done) break;
    const auto n = co_await stream->read_some(std::span(buffer.data(), buffer.size()), ec);
    if (ec == asio::error::eof && framing == http::BodyFraming::until_close) break;
    if (ec) co_return failed("response from " + url + " cut short: " + ec.message());
    body.append(buffer.data(), n);
    if (body.size() + decoded.size() > kMaxJwksBytes) co_return failed("JWKS too large: " + url);
  }
  stream->close();
  co_return auth::KeySet::from_jwks(framing == http::BodyFraming::chunked ? decoded : body);
}

auth::KeySetLoad fetch_jwks_now(const std::string& url, const std::string& ca_file,
                                std::chrono::milliseconds timeout) {
  asio::io_context io;
  auto future = asio::co_spawn(io, fetch_jwks(io, url, ca_file, timeout), asio::use_future);
  io.run();
  return future.get();
}

}  // namespace portcullis::net
