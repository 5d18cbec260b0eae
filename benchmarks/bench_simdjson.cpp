// bench_simdjson.cpp - external reference floor for fastfeed's Binance decoder.
//
// Measures what simdjson On-Demand costs per message on newline-separated Binance
// aggTrade / depthUpdate payloads (raw objects or combined-stream {"stream":..,"data":{..}}).
// Built and driven by bench_simdjson.py, which compiles this file against the simdjson
// amalgamation (simdjson.cpp / simdjson.h) shipped inside the installed pysimdjson wheel.
//
// Protocol (line-based, stdin -> stdout, so one process serves many interleaved runs):
//   argv: floor_simdjson FILE1 [FILE2 ...]     each FILE: newline-separated JSON messages
//   startup prints:  impl <name>  and, per file, "input <i> <messages> <bytes> <selfcheck>"
//   command "run <i> <variant> <min_seconds> <repeats>" prints
//       "result <i> <variant> <best ns/msg> <one-pass checksum> <errors> <all-passes digest>"
//   command "quit" exits.
//
// Buffer layout (the prepared-before-timing state):
//   each file is loaded once into ONE contiguous buffer (the file bytes, newline-separated,
//   exactly what fastfeed's decode_lines receives) followed by SIMDJSON_PADDING spaces.
//   Line offsets are found once, before timing.  Each message is parsed in place with
//   parser.iterate(ptr, len, bytes_to_end_of_buffer): simdjson only requires the
//   SIMDJSON_PADDING bytes after a document to be readable, and here they are the following
//   lines.  A startup self-check re-parses every line from its own simdjson::padded_string
//   and verifies the checksum is identical.  Line splitting is therefore NOT inside the
//   simdjson timings; the "memchr" variant shows what splitting costs on its own.
//
// Variants (fields are the ones fastfeed extracts):
//   aggTrade:    E, s, a, p, q, f, l, T, m
//   depthUpdate: E, s, U, u, and every [price, qty] level of b and a
//   Message kind is dispatched on the "e" field (inside "data" for combined messages).
//   v1u  iterate, find_field_unordered for each field
//   v1o  iterate, find_field (ordered: fields requested in the order Binance sends them)
//   v1l  iterate, one pass over the object's fields with a switch on the key
//   v2u/v2o/v2l  as v1*, plus converting every decimal string to double (std::from_chars)
//                AND to int64 fixed point at scale 1e-8 (plain digit loop)
//   v1m  iterate_many (simdjson's document stream over the whole buffer), field reads as v1l
//   memchr  walk the buffer with memchr('\n') and touch each line (loop-overhead baseline)
// Everything read is folded into a checksum that is printed, so nothing can be optimised away.
// Timing: std::chrono::steady_clock inside this process; each repeat loops over all messages
// until at least min_seconds elapsed; the best repeat is reported in ns per message.

#include "simdjson.h"

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

using namespace simdjson;

namespace {

volatile uint64_t g_keep = 0;   // digest of all timed passes, printed with every result

struct Input {
  std::vector<char> buf;      // file bytes + SIMDJSON_PADDING spaces
  size_t len = 0;             // bytes of JSON text (without padding)
  std::vector<std::pair<size_t, size_t>> lines;  // (offset, length) of non-empty lines
};

// ---------------------------------------------------------------- checksum helpers

struct Sink {
  uint64_t h = 0;        // integer / string mixing
  double d = 0;          // sum of converted doubles
  uint64_t errors = 0;   // simdjson errors (should stay 0)
  inline void add(uint64_t v) { h = (h ^ v) * 0x100000001b3ULL; }
  inline void add_sv(std::string_view s) {
    add(s.size());
    if (!s.empty()) add(static_cast<unsigned char>(s[0]) | (static_cast<uint64_t>(s.back()) << 8));
  }
  uint64_t digest() const {
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    return h ^ bits ^ (errors << 56);
  }
};

// Decimal string -> int64 at scale 1e-8 ("61800.01000000" -> 6180001000000).
// Digits past the 8th fractional one are truncated; a leading '-' is honoured.
inline int64_t to_fixed8(std::string_view s) {
  const char* p = s.data();
  const char* e = p + s.size();
  bool neg = false;
  if (p < e && *p == '-') { neg = true; ++p; }
  int64_t v = 0;
  while (p < e && static_cast<unsigned>(*p - '0') < 10) v = v * 10 + (*p++ - '0');
  int frac = 0;
  if (p < e && *p == '.') {
    ++p;
    while (p < e && frac < 8 && static_cast<unsigned>(*p - '0') < 10) { v = v * 10 + (*p++ - '0'); ++frac; }
  }
  static const int64_t pow10[9] = {100000000, 10000000, 1000000, 100000, 10000, 1000, 100, 10, 1};
  v *= pow10[frac];
  return neg ? -v : v;
}

// A decimal field: with Convert, parsed to double (std::from_chars) and to fixed point.
template <bool Convert>
inline void decimal(Sink& k, std::string_view s) {
  if constexpr (Convert) {
    double x = 0;
    std::from_chars(s.data(), s.data() + s.size(), x);
    k.d += x;
    k.add(static_cast<uint64_t>(to_fixed8(s)));
  } else {
    k.add_sv(s);
  }
}

// ---------------------------------------------------------------- field readers

#define GET(expr, out) do { if ((expr).get(out)) { k.errors++; return; } } while (0)

template <class V>
inline void u64(Sink& k, V&& v) { uint64_t x; if (std::forward<V>(v).get_uint64().get(x)) { k.errors++; return; } k.add(x); }
template <class V>
inline void str(Sink& k, V&& v) { std::string_view s; if (std::forward<V>(v).get_string().get(s)) { k.errors++; return; } k.add_sv(s); }
template <bool C, class V>
inline void dec(Sink& k, V&& v) { std::string_view s; if (std::forward<V>(v).get_string().get(s)) { k.errors++; return; } decimal<C>(k, s); }
template <class V>
inline void boolean(Sink& k, V&& v) { bool b; if (std::forward<V>(v).get_bool().get(b)) { k.errors++; return; } k.add(b ? 3 : 5); }

// levels: [["price","qty"], ...]
template <bool C>
inline void levels(Sink& k, ondemand::value v) {
  ondemand::array arr;
  GET(v.get_array(), arr);
  for (auto lvl : arr) {
    ondemand::array pq;
    GET(lvl.get_array(), pq);
    for (auto x : pq) dec<C>(k, x);
  }
}

enum Access { UNORDERED, ORDERED, LOOP };

template <Access A>
inline simdjson_result<ondemand::value> field(ondemand::object& o, const char* key) {
  if constexpr (A == UNORDERED) return o.find_field_unordered(key);
  else return o.find_field(key);
}

// Body of one aggTrade or depthUpdate object; `e` already consumed when A != LOOP.
template <Access A, bool C>
inline void agg_fields(Sink& k, ondemand::object& o) {
  u64(k, field<A>(o, "E"));
  str(k, field<A>(o, "s"));
  u64(k, field<A>(o, "a"));
  dec<C>(k, field<A>(o, "p"));
  dec<C>(k, field<A>(o, "q"));
  u64(k, field<A>(o, "f"));
  u64(k, field<A>(o, "l"));
  u64(k, field<A>(o, "T"));
  boolean(k, field<A>(o, "m"));
}

template <Access A, bool C>
inline void depth_fields(Sink& k, ondemand::object& o) {
  u64(k, field<A>(o, "E"));
  str(k, field<A>(o, "s"));
  u64(k, field<A>(o, "U"));
  u64(k, field<A>(o, "u"));
  ondemand::value v;
  GET(field<A>(o, "b"), v);
  levels<C>(k, v);
  GET(field<A>(o, "a"), v);
  levels<C>(k, v);
}

// One pass over the fields in document order, switching on the (single-char) key.
// Binance's "e" comes first, so the kind is known before any other field is met.
template <bool C>
inline void loop_fields(Sink& k, ondemand::object& o) {
  bool depth = false;
  for (auto f : o) {
    std::string_view key;                  // escaped_key: raw key text, no unescaping copy
    if (f.escaped_key().get(key)) { k.errors++; return; }
    if (key.size() != 1) continue;
    ondemand::value v;
    GET(f.value(), v);
    switch (key[0]) {
      case 'e': {
        std::string_view e;
        GET(v.get_string(), e);
        depth = e.size() == 11;  // "depthUpdate" vs "aggTrade"
        k.add(e.size());
        break;
      }
      case 'E': case 'a': case 'f': case 'l': case 'T': case 'U': case 'u':
        if (key[0] == 'a' && depth) levels<C>(k, v);
        else u64(k, v);
        break;
      case 's': str(k, v); break;
      case 'p': case 'q': dec<C>(k, v); break;
      case 'm': boolean(k, v); break;
      case 'b': levels<C>(k, v); break;
      default: break;  // "M" and anything else: skipped
    }
  }
}

template <Access A, bool C>
inline void body(Sink& k, ondemand::object& o) {
  if constexpr (A == LOOP) {
    loop_fields<C>(k, o);
  } else {
    std::string_view e;
    GET(field<A>(o, "e").get_string(), e);
    k.add(e.size());
    if (e == "aggTrade") agg_fields<A, C>(k, o);
    else if (e == "depthUpdate") depth_fields<A, C>(k, o);
  }
}

// A document: raw event object, or (combined=true) {"stream":..,"data":{..}}.
template <Access A, bool C>
inline void message(Sink& k, ondemand::document& doc, bool combined) {
  ondemand::object top;
  GET(doc.get_object(), top);
  if (!combined) { body<A, C>(k, top); return; }
  if constexpr (A == LOOP) {
    for (auto f : top) {
      std::string_view key;
      GET(f.escaped_key(), key);
      if (key == "data") {
        ondemand::object o;
        GET(f.value().get_object(), o);
        body<A, C>(k, o);
      }                                   // "stream" is skipped by the iterator
    }
  } else {
    ondemand::object o;
    GET(field<A>(top, "data").get_object(), o);
    body<A, C>(k, o);
  }
}

// ---------------------------------------------------------------- inputs

bool load(const char* path, Input& in, bool& combined) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  in.len = s.size();
  in.buf.assign(s.begin(), s.end());
  in.buf.insert(in.buf.end(), SIMDJSON_PADDING, ' ');
  const char* b = in.buf.data();
  size_t pos = 0;
  while (pos < in.len) {
    const void* nl = std::memchr(b + pos, '\n', in.len - pos);
    size_t end = nl ? static_cast<const char*>(nl) - b : in.len;
    size_t e2 = end;
    if (e2 > pos && b[e2 - 1] == '\r') e2--;
    if (e2 > pos) in.lines.emplace_back(pos, e2 - pos);
    pos = end + 1;
  }
  combined = !in.lines.empty() && std::string_view(b + in.lines[0].first, in.lines[0].second).rfind("{\"stream\"", 0) == 0;
  return true;
}

// ---------------------------------------------------------------- variants

template <Access A, bool C>
void pass_each(ondemand::parser& parser, const Input& in, bool combined, Sink& k) {
  const char* b = in.buf.data();
  const size_t cap_end = in.buf.size();
  for (const auto& [off, n] : in.lines) {
    ondemand::document doc;
    if (parser.iterate(b + off, n, cap_end - off).get(doc)) { k.errors++; continue; }
    message<A, C>(k, doc, combined);
  }
}

void pass_many(ondemand::parser& parser, const Input& in, bool combined, Sink& k) {
  ondemand::document_stream stream;
  if (parser.iterate_many(in.buf.data(), in.len, 1 << 20).get(stream)) { k.errors++; return; }
  for (auto r : stream) {
    ondemand::document_reference ref;
    if (r.get(ref)) { k.errors++; continue; }
    ondemand::object top;
    if (ref.get_object().get(top)) { k.errors++; continue; }
    if (!combined) { body<LOOP, false>(k, top); continue; }
    for (auto f : top) {
      std::string_view key;
      if (f.escaped_key().get(key)) { k.errors++; break; }
      if (key == "data") {
        ondemand::object o;
        if (f.value().get_object().get(o)) { k.errors++; break; }
        body<LOOP, false>(k, o);
      }
    }
  }
}

void pass_memchr(const Input& in, Sink& k) {
  const char* p = in.buf.data();
  const char* end = p + in.len;
  uint64_t count = 0, first = 0;
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
    if (!nl) nl = end;
    if (nl > p) { count++; first += static_cast<unsigned char>(*p); }
    p = nl + 1;
  }
  k.add(count);
  k.add(first);
}

// One full pass of `variant` over the input; returns false for an unknown name.
bool pass(const std::string& variant, ondemand::parser& parser, const Input& in, bool combined, Sink& k) {
  if (variant == "v1u") pass_each<UNORDERED, false>(parser, in, combined, k);
  else if (variant == "v1o") pass_each<ORDERED, false>(parser, in, combined, k);
  else if (variant == "v1l") pass_each<LOOP, false>(parser, in, combined, k);
  else if (variant == "v2u") pass_each<UNORDERED, true>(parser, in, combined, k);
  else if (variant == "v2o") pass_each<ORDERED, true>(parser, in, combined, k);
  else if (variant == "v2l") pass_each<LOOP, true>(parser, in, combined, k);
  else if (variant == "v1m") pass_many(parser, in, combined, k);
  else if (variant == "memchr") pass_memchr(in, k);
  else return false;
  return true;
}

// Self-check: the in-place big-buffer parse must read exactly what a parse of each line from
// its own padded_string reads (same checksum, no errors), for the v1 access modes.
bool selfcheck(ondemand::parser& parser, const Input& in, bool combined) {
  std::vector<padded_string> own;
  own.reserve(in.lines.size());
  for (const auto& [off, n] : in.lines) own.emplace_back(in.buf.data() + off, n);
  Sink ref;
  for (auto& ps : own) {
    ondemand::document doc;
    if (parser.iterate(ps).get(doc)) { ref.errors++; continue; }
    message<UNORDERED, false>(ref, doc, combined);
  }
  if (ref.errors) return false;
  for (const char* v : {"v1u", "v1o", "v1l"}) {
    Sink k;
    pass(v, parser, in, combined, k);
    if (k.errors || k.digest() != ref.digest()) return false;
  }
  Sink a, b;
  pass("v2u", parser, in, combined, a);
  pass("v2l", parser, in, combined, b);
  return !a.errors && a.digest() == b.digest();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE [FILE ...]  (then commands on stdin; see source)\n", argv[0]);
    return 2;
  }
  ondemand::parser parser;
  std::vector<Input> inputs(argc - 1);
  std::vector<bool> combined(argc - 1);
  std::printf("impl %s\n", get_active_implementation()->name().c_str());
  for (int i = 1; i < argc; i++) {
    bool c = false;
    if (!load(argv[i], inputs[i - 1], c)) { std::fprintf(stderr, "cannot read %s\n", argv[i]); return 1; }
    combined[i - 1] = c;
    bool ok = selfcheck(parser, inputs[i - 1], c);
    std::printf("input %d %zu %zu %s\n", i - 1, inputs[i - 1].lines.size(), inputs[i - 1].len, ok ? "ok" : "FAIL");
  }
  std::fflush(stdout);

  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream cmd(line);
    std::string op, variant;
    int idx = 0, repeats = 1;
    double min_seconds = 0.2;
    cmd >> op;
    if (op == "quit") break;
    if (op != "run" || !(cmd >> idx >> variant >> min_seconds >> repeats) || idx < 0 ||
        idx >= static_cast<int>(inputs.size())) {
      std::printf("error bad command: %s\n", line.c_str());
      std::fflush(stdout);
      continue;
    }
    const Input& in = inputs[idx];
    Sink one;                                              // one pass: deterministic checksum
    if (!pass(variant, parser, in, combined[idx], one)) {  // also the warm-up pass
      std::printf("error unknown variant %s\n", variant.c_str());
      std::fflush(stdout);
      continue;
    }
    using clk = std::chrono::steady_clock;
    double best = 1e300;
    Sink k;                                                // every timed pass folds in here
    for (int r = 0; r < repeats; r++) {
      uint64_t passes = 0;
      auto t0 = clk::now();
      double el = 0;
      do {
        pass(variant, parser, in, combined[idx], k);
        passes++;
        el = std::chrono::duration<double>(clk::now() - t0).count();
      } while (el < min_seconds);
      double ns = el * 1e9 / (static_cast<double>(passes) * in.lines.size());
      if (ns < best) best = ns;
    }
    g_keep ^= k.digest();
    std::printf("result %d %s %.2f %016llx %llu %016llx\n", idx, variant.c_str(), best,
                static_cast<unsigned long long>(one.digest()),
                static_cast<unsigned long long>(one.errors + k.errors),
                static_cast<unsigned long long>(g_keep));
    std::fflush(stdout);
  }
  return 0;
}
