// The stack fastfeed replaces: a native C++ Binance client, Boost.Beast WebSocket over OpenSSL
// with simdjson On-Demand, reading one message per read call as a live-market client does.
//
// It reads N messages of a combined aggTrade + depthUpdate stream, extracts every field
// fastfeed extracts (prices and quantities to double), and prints one JSON line:
//   {"wall": s, "cpu": s, "n": N, "lat_us": [p50, p99, p99.9] (when --latency), ...}
// Latency is seen - E per message (E stamped by the simulator in microseconds when it wrote
// the frame; both share the host clock, CLOCK_REALTIME), "seen" read once per message right
// after the message is parsed: the moment a strategy's code would have its fields, the same
// point as fastfeed's hook (after decode and commit) and picows + orjson (after loads).
// --lat-out FILE (implies --latency) also writes the N latencies, float64 in microseconds in
// message order, for bench_e2e's paced runs to aggregate with the other clients'.
// --cpu-after W starts the "cpu" and "wall" clocks after W messages (a paced run's warm-up:
// connect and start-up are not per-message work).
//
// Build: benchmarks/native/build.py (g++, Boost >= 1.70 headers, OpenSSL, pysimdjson's sources).
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/rfc2818_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <sys/resource.h>
#include <vector>

#include "simdjson.h"

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

static int64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

static double cpu_s() {
    rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double wall_s() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double to_double(std::string_view s) {
    // strtod needs a terminated string; decimals from the exchange are short.
    char buf[64];
    size_t n = std::min(s.size(), sizeof(buf) - 1);
    memcpy(buf, s.data(), n);
    buf[n] = 0;
    return strtod(buf, nullptr);
}

struct Sink {  // keeps the compiler from dropping the work
    double sum = 0;
    int64_t ids = 0;
    uint64_t levels = 0;
};

static bool handle(simdjson::ondemand::parser& parser, simdjson::padded_string_view json, Sink& k,
                   int64_t& event_time) {
    auto doc = parser.iterate(json);
    simdjson::ondemand::object data;
    if (doc["data"].get_object().get(data)) return false;
    std::string_view e;
    if (data["e"].get_string().get(e)) return false;
    int64_t E = 0;
    if (data["E"].get_int64().get(E)) return false;
    event_time = E;
    std::string_view s;
    if (data["s"].get_string().get(s)) return false;
    k.ids += int64_t(s.size());
    if (e == "aggTrade") {
        int64_t a, f, l, T;
        std::string_view p, q;
        bool m;
        if (data["a"].get_int64().get(a) || data["p"].get_string().get(p) ||
            data["q"].get_string().get(q) || data["f"].get_int64().get(f) ||
            data["l"].get_int64().get(l) || data["T"].get_int64().get(T) ||
            data["m"].get_bool().get(m))
            return false;
        k.sum += to_double(p) + to_double(q);
        k.ids += a + f + l + T + m;
    } else if (e == "depthUpdate") {
        int64_t U, u;
        if (data["U"].get_int64().get(U) || data["u"].get_int64().get(u)) return false;
        k.ids += U + u;
        for (const char* side : {"b", "a"}) {
            simdjson::ondemand::array levels;
            if (data[side].get_array().get(levels)) return false;
            for (auto lv : levels) {
                simdjson::ondemand::array pq;
                if (lv.get_array().get(pq)) return false;
                int i = 0;
                for (auto v : pq) {
                    std::string_view d;
                    if (v.get_string().get(d)) return false;
                    k.sum += to_double(d);
                    ++i;
                }
                if (i != 2) return false;
                ++k.levels;
            }
        }
    }
    return true;
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1", port, target, ca;
    long n = 0, cpu_after = 0;
    bool latency = false;
    std::string lat_out;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() { return std::string(i + 1 < argc ? argv[++i] : ""); };
        if (a == "--port") port = next();
        else if (a == "--host") host = next();
        else if (a == "--target") target = next();
        else if (a == "--ca") ca = next();
        else if (a == "--n") n = atol(next().c_str());
        else if (a == "--latency") latency = true;
        else if (a == "--cpu-after") cpu_after = atol(next().c_str());
        else if (a == "--lat-out") { lat_out = next(); latency = true; }
        else { fprintf(stderr, "unknown argument %s\n", a.c_str()); return 2; }
    }
    if (port.empty() || target.empty() || ca.empty() || n <= 0 || cpu_after < 0 || cpu_after >= n) {
        fprintf(stderr, "usage: beast_client --port P --target /stream?... --ca FILE --n N [--latency] "
                        "[--lat-out FILE] [--cpu-after W < N]\n");
        return 2;
    }
    try {
        net::io_context ioc;
        ssl::context ctx{ssl::context::tls_client};
        ctx.load_verify_file(ca);
        ctx.set_verify_mode(ssl::verify_peer);
        tcp::resolver resolver{ioc};
        websocket::stream<beast::ssl_stream<tcp::socket>> ws{ioc, ctx};
        auto results = resolver.resolve(host, port);
        net::connect(beast::get_lowest_layer(ws), results);
        beast::get_lowest_layer(ws).set_option(tcp::no_delay(true));
        SSL_set_tlsext_host_name(ws.next_layer().native_handle(), host.c_str());
        ws.next_layer().set_verify_callback(ssl::rfc2818_verification(host));
        ws.next_layer().handshake(ssl::stream_base::client);
        ws.read_message_max(1 << 20);
        ws.handshake(host + ":" + port, target);

        simdjson::ondemand::parser parser;
        beast::flat_buffer buffer;
        std::vector<std::string> ignore;
        std::vector<double> lat;
        if (latency) lat.reserve(size_t(n));
        Sink sink;
        long bad = 0;
        std::string padded;
        double w0 = wall_s(), c0 = cpu_s();
        for (long i = 0; i < n; ++i) {
            if (i == cpu_after && i > 0) {
                w0 = wall_s();
                c0 = cpu_s();
            }
            buffer.clear();
            ws.read(buffer);
            auto data = buffer.data();
            size_t len = data.size();
            // simdjson needs SIMDJSON_PADDING readable bytes past the end: grow the buffer.
            buffer.prepare(simdjson::SIMDJSON_PADDING);
            simdjson::padded_string_view view(static_cast<const char*>(buffer.data().data()), len,
                                              len + simdjson::SIMDJSON_PADDING);
            int64_t E = 0;
            if (!handle(parser, view, sink, E)) ++bad;
            if (latency) lat.push_back(E > 0 ? (now_ns() - E * 1000) / 1e3 : -1.0);
        }
        double wall = wall_s() - w0, cpu = cpu_s() - c0;
        beast::error_code ec;
        ws.next_layer().shutdown(ec);
        printf("{\"wall\": %.6f, \"cpu\": %.6f, \"n\": %ld, \"bad\": %ld, \"levels\": %llu, \"sink\": %.1f",
               wall, cpu, n, bad, (unsigned long long)sink.levels, sink.sum + double(sink.ids));
        if (!lat_out.empty()) {
            FILE* f = fopen(lat_out.c_str(), "wb");
            if (!f || fwrite(lat.data(), sizeof(double), lat.size(), f) != lat.size()) {
                fprintf(stderr, "beast_client: cannot write %s\n", lat_out.c_str());
                return 1;
            }
            fclose(f);
        }
        if (latency && !lat.empty()) {
            std::sort(lat.begin(), lat.end());
            auto pct = [&](double p) {
                size_t k = std::min(lat.size() - 1, size_t(p / 100.0 * double(lat.size() - 1) + 0.5));
                return lat[k];
            };
            printf(", \"lat_us\": [%.3f, %.3f, %.3f]", pct(50), pct(99), pct(99.9));
        }
        printf("}\n");
    } catch (std::exception const& e) {
        fprintf(stderr, "beast_client: %s\n", e.what());
        return 1;
    }
    return 0;
}
