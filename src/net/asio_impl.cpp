// The one translation unit that compiles Asio's implementation (BOOST_ASIO_SEPARATE_COMPILATION),
// including asio::ssl, which the demo upstream and test peers use.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
