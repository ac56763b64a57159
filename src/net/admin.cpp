// Connections on the admin listener: the head is read here, under the same limits as any other;
// the rest is the admin module's (admin/listener.hpp).

#include "connection.hpp"
#include "portcullis/admin/listener.hpp"

namespace portcullis::net {

asio::awaitable<void> ClientConnection::serve_admin() {
  ensure_exchange();
  const Runtime& runtime = *pinned_->runtime;
  http::ParseResult parsed;
  if (!co_await read_head(runtime, parsed)) co_return;
  if (parsed.state == http::ParseState::error) {
    co_await send_local(parsed.reply.status, parsed.reply.reason, true);
    co_return;
  }
  ex_->head_bytes = parsed.head_bytes;
  const admin::ListenerContext context{runtime.admin_token,     runtime.state.get(),
                                       *runtime.logs,           worker_.services.metrics,
                                       *worker_.services.clock, peer_};
  co_await admin::serve(client_side(), context);
}

}  // namespace portcullis::net
