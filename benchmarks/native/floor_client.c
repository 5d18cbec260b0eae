/* The floor of a paced run: the least work any TLS WebSocket client that sleeps between
 * messages can do per message.  Plain C over OpenSSL: one blocking SSL_read per wake-up (no
 * event loop, no epoll), the frame header read, the payload left unparsed except for its
 * "E" stamp (the latency).  No JSON parse, no rows, no strategy: whatever a real client does
 * comes on top of this.
 *
 * bench_e2e's paced runs measure it beside the C++ Boost.Beast client, so that a CPU bar can be
 * read against what the kernel and TLS alone cost on the machine: its "stime" is the kernel's
 * share (the wake-up and the read), "utime" the decryption and the frame loop.
 *
 *   floor_client --port P --target /stream?... --ca FILE --n N [--cpu-after W] [--lat-out F]
 *
 * Prints one JSON line: {"wall", "cpu", "utime", "stime", "n", "reads"} (the clocks start after
 * W messages).  Build: benchmarks/native/build.py (a C compiler and OpenSSL's headers). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void cpu_s(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int die(const char *what) {
    fprintf(stderr, "floor_client: %s\n", what);
    ERR_print_errors_fp(stderr);
    return 1;
}

/* The event time after the first "E": (microseconds, timeUnit=MICROSECOND), or 0. */
static int64_t stamp(const unsigned char *p, size_t n) {
    for (size_t i = 0; i + 4 < n; ++i) {
        if (p[i] == '"' && p[i + 1] == 'E' && p[i + 2] == '"' && p[i + 3] == ':') {
            int64_t v = 0;
            for (i += 4; i < n && p[i] >= '0' && p[i] <= '9'; ++i) v = v * 10 + (p[i] - '0');
            return v;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *port = NULL, *target = NULL, *ca = NULL, *lat_out = NULL;
    long n = 0, cpu_after = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = argv[i + 1];
        else if (!strcmp(argv[i], "--target")) target = argv[i + 1];
        else if (!strcmp(argv[i], "--ca")) ca = argv[i + 1];
        else if (!strcmp(argv[i], "--n")) n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--cpu-after")) cpu_after = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--lat-out")) lat_out = argv[i + 1];
        else {
            fprintf(stderr, "floor_client: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!port || !target || !ca || n <= 0 || cpu_after < 0 || cpu_after >= n) {
        fprintf(stderr, "usage: floor_client --port P --target T --ca FILE --n N [--cpu-after W < N] "
                        "[--lat-out FILE]\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) return die("connect failed");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) return die("cannot load the CA");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "127.0.0.1");
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
    if (SSL_connect(ssl) != 1) return die("TLS handshake failed");

    char req[2048];
    int len = snprintf(req, sizeof req,
                       "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n",
                       target, port);
    if (len <= 0 || len >= (int)sizeof req || SSL_write(ssl, req, len) != len)
        return die("cannot send the upgrade");

    size_t cap = 1 << 21, have = 0, pos = 0;
    unsigned char *buf = malloc(cap);
    double *lat = malloc(sizeof(double) * (size_t)n);
    if (!buf || !lat) return die("out of memory");
    for (;;) {  /* the HTTP response, up to its blank line */
        int r = SSL_read(ssl, buf + have, (int)(cap - have));
        if (r <= 0) return die("no upgrade response");
        have += (size_t)r;
        unsigned char *end = memmem(buf, have, "\r\n\r\n", 4);
        if (end) {
            if (have < 12 || memcmp(buf + 9, "101", 3) != 0) return die("upgrade refused");
            pos = (size_t)(end + 4 - buf);
            break;
        }
    }

    long got = 0, reads = 0;
    double w0 = wall_s(), u0, s0;
    cpu_s(&u0, &s0);
    while (got < n) {
        /* every whole frame in the buffer */
        while (got < n && have - pos >= 2) {
            unsigned char *f = buf + pos;
            size_t hdr = 2, plen = f[1] & 0x7f;
            if (plen == 126) {
                if (have - pos < 4) break;
                plen = ((size_t)f[2] << 8) | f[3];
                hdr = 4;
            } else if (plen == 127) {
                if (have - pos < 10) break;
                plen = 0;
                for (int k = 0; k < 8; ++k) plen = (plen << 8) | f[2 + k];
                hdr = 10;
            }
            if (hdr + plen > cap) return die("frame larger than the buffer");
            if (have - pos < hdr + plen) break;
            int op = f[0] & 0x0f;
            if (op == 1 || op == 2) {
                int64_t e = stamp(f + hdr, plen);
                lat[got] = e > 0 ? (double)(now_ns() - e * 1000) / 1e3 : -1.0;
                if (++got == cpu_after) {
                    w0 = wall_s();
                    cpu_s(&u0, &s0);
                }
            } else if (op == 9 && plen <= 125) {  /* ping: a masked pong, mask 0 */
                unsigned char pong[2 + 4 + 125];
                pong[0] = 0x8a;
                pong[1] = (unsigned char)(0x80 | plen);
                memset(pong + 2, 0, 4);
                memcpy(pong + 6, f + hdr, plen);
                if (SSL_write(ssl, pong, (int)(6 + plen)) <= 0) return die("cannot pong");
            } else if (op == 8) {
                return die("the server closed the stream early");
            }
            pos += hdr + plen;
        }
        if (got >= n) break;
        if (pos == have) pos = have = 0;
        else if (cap - have < 65536) {
            memmove(buf, buf + pos, have - pos);
            have -= pos;
            pos = 0;
        }
        int r = SSL_read(ssl, buf + have, (int)(cap - have));
        if (r <= 0) return die("read failed");
        have += (size_t)r;
        ++reads;
    }
    double u1, s1;
    cpu_s(&u1, &s1);
    double wall = wall_s() - w0;
    if (lat_out) {
        FILE *out = fopen(lat_out, "wb");
        if (!out || fwrite(lat, sizeof(double), (size_t)n, out) != (size_t)n) return die("cannot write the latencies");
        fclose(out);
    }
    printf("{\"wall\": %.6f, \"cpu\": %.6f, \"utime\": %.6f, \"stime\": %.6f, \"n\": %ld, \"reads\": %ld}\n",
           wall, (u1 - u0) + (s1 - s0), u1 - u0, s1 - s0, n, reads);
    SSL_shutdown(ssl);
    return 0;
}
