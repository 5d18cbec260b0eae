/* Wall-clock receive time in ns since the epoch, comparable with Binance's ms event times. */
#ifndef FASTFEED_CLOCK_H
#define FASTFEED_CLOCK_H
#include <stdint.h>
#ifdef _WIN32
#include <windows.h>
static inline int64_t ff_now_ns(void) {
    FILETIME ft;
    GetSystemTimePreciseAsFileTime(&ft);
    uint64_t t = ((uint64_t)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
    return (int64_t)((t - 116444736000000000ULL) * 100ULL);
}
#else
#include <time.h>
static inline int64_t ff_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
#endif
#endif
