// Local replies: the connection loop, the forwarder and the admin listener answer through this
// one function.

#include "portcullis/core/errors.hpp"
#include "portcullis/upstream/forwarder.hpp"

namespace portcullis::upstream {

asio::awaitable<bool> send_local(ClientSide client, int status, core::Reason reason, bool close,
                                 std::span<const filters::ExtraHeader> extra,
                                 std::string_view body) {
  Exchange& ex = client.ex;
  if (ex.request_id.empty()) client.request_ids.next(ex.request_id);
  ex.out.clear();
  const bool head_request = ex.head.method == "HEAD";
  const filters::ResponseContext context{client.policy, ex.request_id, head_request, close};
  if (body.empty()) {
    filters::build_local_reply(context, status, core::error_code_for_status(status), extra, ex.out);
  } else {
    filters::build_local_reply_with_body(context, status, body, extra, ex.out);
  }
  ex.record.status = status;
  ex.record.reason = reason;
  const std::string_view piece = ex.out;
  co_return !co_await client.write(std::span(&piece, 1));
}

}  // namespace portcullis::upstream
