// LD_PRELOAD shim for the reliability benchmarks: binds every unbound IPv4 TCP socket to the
// loopback address in PORTCULLIS_SOURCE_ADDR before it connects, so that a load tool with no
// source-address option (slowhttptest) appears to the gateway as a client of its own. Only
// 127.0.0.0/8 destinations are touched; anything else connects unchanged.
//
// Built by benchmarks/reliability.py:  cc -shared -fPIC -O2 -o source_address.so source_address.c
// -ldl
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*ConnectFn)(int, const struct sockaddr*, socklen_t);

int connect(int fd, const struct sockaddr* address, socklen_t length) {
  static ConnectFn real_connect;
  if (!real_connect) real_connect = (ConnectFn)dlsym(RTLD_NEXT, "connect");
  const char* source = getenv("PORTCULLIS_SOURCE_ADDR");
  if (source && address && address->sa_family == AF_INET &&
      length >= (socklen_t)sizeof(struct sockaddr_in)) {
    const struct sockaddr_in* target = (const struct sockaddr_in*)address;
    struct sockaddr_in bound;
    socklen_t bound_length = sizeof bound;
    const int loopback = (ntohl(target->sin_addr.s_addr) >> 24) == 127;
    int type = 0;
    socklen_t type_length = sizeof type;
    const int stream =
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_length) == 0 && type == SOCK_STREAM;
    if (loopback && stream && getsockname(fd, (struct sockaddr*)&bound, &bound_length) == 0 &&
        bound.sin_family == AF_INET && bound.sin_port == 0) {
      struct sockaddr_in local;
      memset(&local, 0, sizeof local);
      local.sin_family = AF_INET;
      if (inet_pton(AF_INET, source, &local.sin_addr) == 1) {
        const int saved = errno;
        bind(fd, (const struct sockaddr*)&local, sizeof local);  // port 0: the kernel picks one
        errno = saved;
      }
    }
  }
  return real_connect(fd, address, length);
}
