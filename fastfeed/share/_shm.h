/* Shared-memory segment of fastfeed.share: the fixed header, the atomics and the futex.
 * Layout and protocol: docs/decisions/0601-shared-memory-rings.md.  One writer process, any
 * number of readers; readers write only their own slot and the waiter count. */
#ifndef FF_SHM_H
#define FF_SHM_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ff_cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define ff_cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define ff_cpu_relax() __asm__ __volatile__("" ::: "memory")
#endif

/* "FFSHM\0\0\1" read as a little-endian u64 */
#define FF_SHM_MAGIC 0x0100004d48534646ULL
#define FF_SHM_LAYOUT 1

enum {
    FF_SEG_INIT = 0,     /* being built: readers wait or refuse */
    FF_SEG_LIVE = 1,     /* a writer serves it */
    FF_SEG_CLOSED = 2,   /* the writer closed it (and unlinked its name) */
    FF_SEG_REPLACED = 3, /* a new writer took the name over: a new generation */
};

enum { FF_READER_SLOTS = 64, FF_MAX_RINGS = 16 };

typedef struct {
    uint32_t pid;      /* 0 = free; claimed by a reader with a compare-and-swap */
    uint32_t sleeping; /* 1 while the reader counts in the header's waiters */
    uint64_t attached_ns;
    char _pad[48];
} ff_reader_slot;

/* Offsets are fixed by this struct; every line the writer stores to often has a line of its
 * own, apart from what readers poll. */
typedef struct {
    /* line 0: written once at creation, then only state */
    uint64_t magic;
    uint32_t layout;
    uint32_t header_size;
    uint64_t generation;
    int64_t created_ns;
    uint32_t writer_pid;
    uint32_t state;
    uint64_t desc_offset; /* JSON descriptor: rings, dtypes, offsets, symbols */
    uint64_t desc_len;
    uint64_t total_size;
    /* line 1: the writer's heartbeat */
    int64_t heartbeat_ns;
    uint64_t notifies;
    uint64_t wakes; /* notifies that found a sleeping reader (a syscall each) */
    char _pad1[40];
    /* line 2: sleeping readers */
    uint32_t futex;   /* bumped by the writer after each batch of commits */
    uint32_t waiters; /* readers inside (or about to enter) FUTEX_WAIT */
    char _pad2[56];
    /* line 3: symbol names published so far */
    uint32_t nsym;
    uint32_t sym_bytes;
    uint32_t sym_dropped; /* names that did not fit the segment's symbol area */
    char _pad3[52];
    ff_reader_slot readers[FF_READER_SLOTS];
} ff_seg_header;

static inline uint64_t ff_load_acq64(const uint64_t *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline uint32_t ff_load_acq32(const uint32_t *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void ff_store_rel32(uint32_t *p, uint32_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline void ff_store_rel64(uint64_t *p, uint64_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline void ff_store_rel_i64(int64_t *p, int64_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline int64_t ff_load_acq_i64(const int64_t *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
/* The seqlock's read side: the row bytes copied before are ordered before what follows. */
static inline void ff_fence_acq(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static inline uint32_t ff_add32(uint32_t *p, uint32_t v) {
    return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST);
}
static inline uint32_t ff_sub32(uint32_t *p, uint32_t v) {
    return __atomic_sub_fetch(p, v, __ATOMIC_SEQ_CST);
}
static inline uint32_t ff_load_sc32(const uint32_t *p) {
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}
static inline int ff_cas32(uint32_t *p, uint32_t expect, uint32_t v) {
    return __atomic_compare_exchange_n(p, &expect, v, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

static inline int64_t ff_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sleep while *addr == val, at most timeout_ns (shared futex: the word is in a mapping of
 * several processes).  Returns 0 when woken or when *addr changed, 1 on timeout; without a
 * futex (not Linux) it sleeps 50 us and returns 0. */
static inline int ff_futex_wait(uint32_t *addr, uint32_t val, int64_t timeout_ns) {
#if defined(__linux__)
    struct timespec ts;
    long r;
    ts.tv_sec = (time_t)(timeout_ns / 1000000000);
    ts.tv_nsec = (long)(timeout_ns % 1000000000);
    r = syscall(SYS_futex, addr, FUTEX_WAIT, val, &ts, NULL, 0);
    return (r == -1 && errno == ETIMEDOUT) ? 1 : 0;
#else
    struct timespec ts = {0, 50000};
    (void)addr;
    (void)val;
    (void)timeout_ns;
    nanosleep(&ts, NULL);
    return 0;
#endif
}

/* Linux stretches a thread's sleeps by its timer slack (50 us by default, which would make a
 * 20 us nap a 70 us one): a polling reader cuts its thread's slack to a tenth of its naps, at
 * most, once per wait, and leaves it so. */
static inline void ff_poll_slack(int64_t nap_ns) {
#if defined(__linux__)
    long want = (long)(nap_ns / 10) > 0 ? (long)(nap_ns / 10) : 1;
    if (prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0) > want)
        prctl(PR_SET_TIMERSLACK, (unsigned long)want, 0, 0, 0);
#else
    (void)nap_ns;
#endif
}

/* A polling reader's nap of ns nanoseconds (after ff_poll_slack). */
static inline void ff_nap(int64_t ns) {
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    nanosleep(&ts, NULL);
}

/* One sleeper: the writer pays for one wake-up however many readers sleep; each woken reader
 * wakes the next (ff_futex_wake_one from the reader while others still wait). */
static inline void ff_futex_wake_one(uint32_t *addr) {
#if defined(__linux__)
    syscall(SYS_futex, addr, FUTEX_WAKE, 1, NULL, NULL, 0);
#else
    (void)addr;
#endif
}

static inline void ff_futex_wake_all(uint32_t *addr) {
#if defined(__linux__)
    syscall(SYS_futex, addr, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
#else
    (void)addr;
#endif
}

/* The writer after a batch of commits: bump the word, and pay a syscall only when a reader
 * sleeps (one wake-up: the readers pass it on).  Readers count themselves in ``waiters`` before they read the word and re-check
 * the rings (all seq_cst), so a wake-up is never missed. */
static inline void ff_seg_notify(ff_seg_header *h) {
    ff_add32(&h->futex, 1);
    if (ff_load_sc32(&h->waiters)) {
        ff_futex_wake_one(&h->futex);
        __atomic_store_n(&h->wakes, h->wakes + 1, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&h->notifies, h->notifies + 1, __ATOMIC_RELAXED);
}

#endif
