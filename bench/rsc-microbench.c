/*
 * Microbenchmark of the virtio-net RSC engine on plain memory
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Feeds 1448-byte TCP/IPv4 segments with the timestamp option, from 1 to
 * 4096 interleaved connections, through virtio_net_rsc_receive().  The fake
 * guest's receive buffers are preallocated 64 KiB blocks, one per unit.
 * Each connection sends ROUND_SEGS segments per round, interleaved with the
 * other connections; units are flushed by the engine when they fill and by
 * virtio_net_rsc_flush_all() at the end of each round (as with
 * rsc_interval=0 at the end of a receive burst).
 *
 * Reported, in ns per segment:
 * - copy: unit_begin/unit_write copy into the guest buffer, as the device
 *   does (unit_end writes the final headers);
 * - no copy: the fake guest copies nothing: the engine's own cost;
 * - floor: one memcpy of each segment's payload into the same kind of
 *   buffer at the same offset, from the same frames: copying each byte once
 *   (the engine copies a unit's first frame whole, headers included);
 * - DPDK: DPDK's GRO library on the same frames (rsc-microbench-dpdk.c),
 *   which chains payloads instead of copying them: compare with "no copy";
 * - 1 conn: copy and no copy again, on one connection with DATA_VALID,
 *   for the ratios to the one-connection cost.
 * The variants that are compared with each other take turns, BLOCK
 * batches each, so that they see the same machine (its speed changes in
 * phases that last seconds): copy, floor and copy on one connection; then
 * no copy, DPDK and no copy on one connection.  The engine's flow table
 * shares the cache only with the variants of its own group.
 * Frames are built, untimed, in batches of BATCH just before they are
 * offered, so that they are in the cache as if the backend had just read
 * them.  Checksums are valid; the backend's vnet header says DATA_VALID
 * (no checksum computed) except in the row marked "verified".
 * Time is taken with CLOCK_MONOTONIC around each batch; a batch during which
 * the thread was switched out is left out (the header line says how many).
 *
 * Usage: rsc-microbench [REPETITIONS [SEGMENTS]]
 *   each configuration runs REPETITIONS times (default 7) over at least
 *   SEGMENTS segments (default 300000), whole rounds.
 * Or:    rsc-microbench --count CONNECTIONS valid|verified
 *   untimed, the engine alone; prints the number of segments, for
 *   counting instructions under callgrind.
 */

#include "qemu/osdep.h"
#include <sys/resource.h>
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include "net/eth.h"
#include "standard-headers/linux/virtio_net.h"
#include "hw/virtio/virtio-net-rsc.h"
#include "../tests/include/virtio-net-rsc-frames.h"
#include "rsc-microbench-dpdk.h"

#define VHDR_LEN 12                     /* backend vnet header */
#define PAYLOAD 1448                    /* TCP payload per segment */
#define TCP_HLEN 32                     /* with NOP, NOP, timestamp */
#define L234_LEN (ETH_HLEN + 20 + TCP_HLEN)
#define FRAME_LEN (VHDR_LEN + L234_LEN + PAYLOAD)
#define UNIT_BUF (64 * 1024)            /* one guest buffer per unit */
#define ROUND_SEGS 90                   /* per connection: two full units */
#define BATCH 128                       /* frames built per timed batch */
#define BLOCK 32                        /* batches per turn of a variant */
#define MAX_CONNS 4096
#define NBUFS (MAX_CONNS + 2)
#define REF_BUFS 4                      /* for the one-connection variants */

typedef enum Variant {
    VAR_COPY,
    VAR_NO_COPY,
    VAR_FLOOR,
    VAR_DPDK,
    VAR_REF_COPY,           /* copy, one connection */
    VAR_REF_NO_COPY,        /* no copy, one connection */
    VAR__MAX,
} Variant;

/* One row of the table. */
typedef struct Config {
    unsigned conns;
    bool verify;            /* vnet flags 0: the engine checks checksums */
} Config;

static const Config configs[] = {
    { 1, false },
    { 16, false },
    { 64, false },
    { 1024, false },
    { 4096, false },
    { 1, true },
};

/* The fake guest: a stack of free 64 KiB buffers. */
typedef struct Guest {
    uint8_t *bufs[NBUFS];   /* all buffers, for the floor */
    uint8_t *free[NBUFS];   /* free buffers, a stack */
    unsigned nfree;
    bool copy;              /* copy frames and payload into the buffers */
    uint64_t units;         /* units delivered, coalesced or not */
    uint64_t payload;       /* payload bytes in them */
    uint64_t alone;         /* frames delivered alone */
    uint8_t sink[FRAME_LEN]; /* where frames delivered alone go */
} Guest;

/* The sender's side: what each connection sends next. */
typedef struct Traffic {
    unsigned conns;
    bool verify;
    uint64_t next;          /* index of the next segment, from 0 */
    uint32_t seq[MAX_CONNS];
    uint16_t floor_off[MAX_CONNS];
    uint32_t payload_sum;   /* checksum of the payload, computed once */
    uint8_t payload[PAYLOAD];
    uint8_t frames[BATCH][FRAME_LEN];
    bool round_end[BATCH];  /* flush everything after this frame */
    uint8_t *floor_dst[BATCH];
} Traffic;

static Guest guests[VAR__MAX];     /* one per variant */
static Traffic traffic[VAR__MAX];  /* one per variant */
static uint64_t batches, preempted;

/*
 * The floor's copy length, volatile so that the compiler calls memcpy()
 * like the fake guest does instead of inlining a fixed-size copy.
 */
static volatile size_t floor_len = PAYLOAD;

static NetRscBegin guest_begin(void *opaque, unsigned queue,
                               const uint8_t *buf, size_t size, size_t keep,
                               const NetRscRxInfo *info, void **unit)
{
    Guest *g = opaque;
    uint8_t *b;

    if (!g->nfree) {
        return NET_RSC_BEGIN_NO_BUFFER;
    }
    b = g->free[--g->nfree];
    if (g->copy) {
        memcpy(b, buf + VHDR_LEN, size - VHDR_LEN);
    }
    *unit = b;
    return NET_RSC_BEGIN_OK;
}

static bool guest_write(void *opaque, void *unit, size_t offset,
                        const void *data, size_t len)
{
    Guest *g = opaque;

    if (offset + len > UNIT_BUF) {
        return false;
    }
    if (g->copy) {
        memcpy((uint8_t *)unit + offset, data, len);
    }
    return true;
}

static void guest_end(void *opaque, void *unit, const NetRscVnetHdr *hdr,
                      const uint8_t *l234, size_t l234_len, size_t frame_len)
{
    Guest *g = opaque;

    if (hdr && g->copy) {
        memcpy(unit, l234, l234_len);
    }
    g->units++;
    g->payload += frame_len - L234_LEN;
    g->free[g->nfree++] = unit;
}

static ssize_t guest_deliver(void *opaque, unsigned queue, const uint8_t *buf,
                             size_t size, const NetRscVnetHdr *hdr,
                             const NetRscRxInfo *info)
{
    Guest *g = opaque;

    if (g->copy) {
        memcpy(g->sink, buf, MIN(size, sizeof(g->sink)));
    }
    g->alone++;
    return size;
}

static int64_t guest_now(void *opaque)
{
    return 0;
}

static const NetRscOps guest_ops = {
    .unit_begin = guest_begin,
    .unit_write = guest_write,
    .unit_end = guest_end,
    .deliver = guest_deliver,
    .now = guest_now,
};

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long context_switches(void)
{
    struct rusage ru;

    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_nvcsw + ru.ru_nivcsw;
}

static void traffic_reset(Traffic *t, unsigned conns, bool verify)
{
    unsigned c;

    t->conns = conns;
    t->verify = verify;
    t->next = 0;
    for (c = 0; c < conns; c++) {
        t->seq[c] = 0x10000000u * (c & 0xf) + c * 7919u;
        t->floor_off[c] = L234_LEN;
    }
}

/* Build segment @i of the traffic into @frame; returns its connection. */
static unsigned build(Traffic *t, uint64_t i, uint8_t *frame)
{
    uint64_t round_len = (uint64_t)t->conns * ROUND_SEGS;
    unsigned c = i % t->conns;
    /*
     * TSval advances once per round, ROUND_SEGS segments (130 KB) per
     * connection: a 1 ms TCP clock at about 1 Gbit/s per connection.
     * DPDK's GRO ends a packet where the TCP options change.
     */
    uint32_t tsval = (i / round_len) * 100;
    RscSeg s = {
        .dst_mac = (const uint8_t *)"\x52\x54\x00\x12\x34\x56",
        .src_mac = (const uint8_t *)"\x52\x54\x00\x65\x43\x21",
        .ttl = 64, .df = true, .ip_id = i & 0xffff,
        .sport = 10000 + c, .dport = 5201, .seq = t->seq[c],
        .ack = 0x12345678, .flags = TCP_FLAG_ACK, .win = 512,
        .opts = rsc_seg_ts_opts, .opts_len = sizeof(rsc_seg_ts_opts),
        .tsval = tsval, .tsecr = 0x0badcafe, .plen = PAYLOAD,
    };

    stl_be_p(s.src_ip, 0x0a010000 | c);
    stl_be_p(s.dst_ip, 0x0a000002);
    memset(frame, 0, VHDR_LEN);
    frame[0] = t->verify ? 0 : VIRTIO_NET_HDR_F_DATA_VALID;
    rsc_seg_put_headers(&s, frame + VHDR_LEN);
    memcpy(frame + VHDR_LEN + L234_LEN, t->payload, PAYLOAD);
    rsc_seg_put_tcp_csum(&s, frame + VHDR_LEN, t->payload_sum);
    t->seq[c] += PAYLOAD;
    return c;
}

/* Build the next @n frames of the traffic; untimed. */
static void prepare(Traffic *t, Guest *g, unsigned n)
{
    uint64_t round_len = (uint64_t)t->conns * ROUND_SEGS;
    unsigned k;

    for (k = 0; k < n; k++, t->next++) {
        unsigned c = build(t, t->next, t->frames[k]);

        t->round_end[k] = (t->next + 1) % round_len == 0;
        /* where one copy of the payload would go: the unit's next slot */
        if (t->floor_off[c] + PAYLOAD > UNIT_BUF) {
            t->floor_off[c] = L234_LEN;
        }
        t->floor_dst[k] = g->bufs[c] + t->floor_off[c];
        t->floor_off[c] += PAYLOAD;
    }
}

/*
 * Untimed: @segs segments of the traffic of @cfg through the engine, with
 * the guest that does not copy.  For counting instructions with
 * valgrind --tool=callgrind --toggle-collect=virtio_net_rsc_* (see
 * scripts/microbench.sh): deterministic, unlike time on a shared machine.
 */
static void count_run(const Config *cfg, uint64_t segs)
{
    unsigned max_flows = MAX(cfg->conns, NET_RSC_DEFAULT_MAX_FLOWS);
    Traffic *t = &traffic[VAR_NO_COPY];
    Guest *g = &guests[VAR_NO_COPY];
    NetRscChain *chain;
    uint64_t done;
    unsigned k;

    traffic_reset(t, cfg->conns, cfg->verify);
    chain = virtio_net_rsc_new(&guest_ops, g, 1, max_flows, 0);
    for (done = 0; done < segs; done += BATCH) {
        unsigned n = MIN(BATCH, segs - done);

        prepare(t, &guests[VAR_COPY], n);
        for (k = 0; k < n; k++) {
            virtio_net_rsc_receive(chain, 0, t->frames[k], FRAME_LEN,
                                   VHDR_LEN, NULL);
            if (t->round_end[k]) {
                virtio_net_rsc_flush_all(chain, NET_RSC_FLUSH_BURST);
            }
        }
    }
    virtio_net_rsc_flush_all(chain, NET_RSC_FLUSH_BURST);
    virtio_net_rsc_delete(chain);
    if (g->alone || g->payload != segs * PAYLOAD) {
        g_printerr("rsc-microbench: not every segment was coalesced\n");
        exit(1);
    }
    g_print("%" PRIu64 "\n", segs);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/*
 * The next @n frames of variant @v's traffic through it.  False if the
 * thread was switched out meanwhile, else *@ns is the time per frame.
 */
static bool run_batch(Variant v, NetRscChain *chain, unsigned n,
                      uint64_t *dpdk_pkts, double *ns)
{
    Traffic *t = &traffic[v];
    int64_t t0, t1;
    unsigned k;
    long cs;

    prepare(t, &guests[VAR_COPY], n);
    if (v == VAR_DPDK) {
        dpdk_gro_load(t->frames[0], FRAME_LEN, n, VHDR_LEN,
                      FRAME_LEN - VHDR_LEN, 20, TCP_HLEN);
    }
    cs = context_switches();
    t0 = now_ns();
    if (v == VAR_DPDK) {
        *dpdk_pkts += dpdk_gro_run(n);
    } else if (v == VAR_FLOOR) {
        size_t len = floor_len;

        for (k = 0; k < n; k++) {
            memcpy(t->floor_dst[k], t->frames[k] + VHDR_LEN + L234_LEN, len);
        }
    } else {
        for (k = 0; k < n; k++) {
            if (virtio_net_rsc_receive(chain, 0, t->frames[k], FRAME_LEN,
                                       VHDR_LEN, NULL) != FRAME_LEN) {
                g_printerr("rsc-microbench: segment not accepted\n");
                exit(1);
            }
            if (t->round_end[k]) {
                virtio_net_rsc_flush_all(chain, NET_RSC_FLUSH_BURST);
            }
        }
    }
    t1 = now_ns();
    batches++;
    if (context_switches() != cs) {
        preempted++;
        return false;
    }
    *ns = (double)(t1 - t0) / n;
    return true;
}

/* Variants that take turns, in two groups; see the top of the file. */
static const Variant groups[2][3] = {
    { VAR_COPY, VAR_FLOOR, VAR_REF_COPY },
    { VAR_NO_COPY, VAR_DPDK, VAR_REF_NO_COPY },
};

/*
 * Run @segs segments of the traffic of @cfg through each variant (the
 * one-connection variants on one connection), the variants of a group
 * taking turns of BLOCK batches; @first picks which group and variant go
 * first.  res[v] receives the median over the batches of the ns per segment of
 * variant v: a batch slowed down by an interrupt or a busy neighbour
 * does not move it.  *@per_unit receives the segments per delivered
 * packet, *@dpdk_per_pkt the same for DPDK's GRO.
 */
static void measure(const Config *cfg, uint64_t segs, unsigned first,
                    double res[VAR__MAX], double *per_unit,
                    double *dpdk_per_pkt)
{
    unsigned max_flows = MAX(cfg->conns, NET_RSC_DEFAULT_MAX_FLOWS);
    uint64_t nbatch = DIV_ROUND_UP(segs, BATCH), b, b0;
    NetRscChain *chain[VAR__MAX] = { NULL };
    g_autofree double *samples = g_new(double, VAR__MAX * nbatch);
    unsigned counted[VAR__MAX] = { 0 };
    uint64_t dpdk_pkts = 0;
    unsigned v, j, gi;

    QEMU_BUILD_BUG_ON(BATCH > DPDK_GRO_MAX_FRAMES);

    for (v = 0; v < VAR__MAX; v++) {
        Guest *g = &guests[v];
        bool ref = v == VAR_REF_COPY || v == VAR_REF_NO_COPY;

        /* the reference: one connection, DATA_VALID */
        traffic_reset(&traffic[v], ref ? 1 : cfg->conns,
                      !ref && cfg->verify);
        g->copy = v == VAR_COPY || v == VAR_REF_COPY;
        g->units = g->payload = g->alone = 0;
        if (v != VAR_FLOOR && v != VAR_DPDK) {
            chain[v] = virtio_net_rsc_new(&guest_ops, g, 1,
                                          ref ? 1 : max_flows, 0);
        }
    }
    QEMU_BUILD_BUG_ON(ARRAY_SIZE(groups) * ARRAY_SIZE(groups[0]) !=
                      VAR__MAX);
    for (gi = 0; gi < ARRAY_SIZE(groups); gi++) {
        const Variant *group = groups[(first + gi) % ARRAY_SIZE(groups)];

        for (b0 = 0; b0 < nbatch; b0 += BLOCK) {
            for (j = 0; j < ARRAY_SIZE(groups[0]); j++) {
                v = group[(first + j) % ARRAY_SIZE(groups[0])];
                for (b = b0; b < MIN(b0 + BLOCK, nbatch); b++) {
                    double ns;

                    if (run_batch(v, chain[v], MIN(BATCH, segs - b * BATCH),
                                  &dpdk_pkts, &ns)) {
                        samples[v * nbatch + counted[v]++] = ns;
                    }
                }
            }
        }
    }
    *dpdk_per_pkt = (double)segs / dpdk_pkts;
    /* a burst of 128 has two segments or more of up to 64 connections */
    if (cfg->conns <= 64 && *dpdk_per_pkt < 1.5) {
        g_printerr("rsc-microbench: DPDK's GRO merged %.2f segments per "
                   "packet at %u connections: not a fair comparison\n",
                   *dpdk_per_pkt, cfg->conns);
        exit(1);
    }
    for (v = 0; v < VAR__MAX; v++) {
        Guest *g = &guests[v];

        res[v] = counted[v] ? median(&samples[v * nbatch], counted[v]) : 0;
        if (!chain[v]) {
            continue;
        }
        virtio_net_rsc_flush_all(chain[v], NET_RSC_FLUSH_BURST);
        virtio_net_rsc_delete(chain[v]);
        if (g->alone || g->payload != segs * PAYLOAD) {
            g_printerr("rsc-microbench: %" PRIu64 " frames not coalesced, "
                       "%" PRIu64 " of %" PRIu64 " payload bytes delivered\n",
                       g->alone, g->payload, segs * PAYLOAD);
            exit(1);
        }
        if (v == VAR_COPY) {
            *per_unit = (double)segs / g->units;
        }
    }
}

/* "median (min-max)" of @v; @v is left as it is. */
static char *fmt_stat(const double *v, unsigned n)
{
    g_autofree double *w = g_memdup2(v, n * sizeof(*v));

    qsort(w, n, sizeof(*w), cmp_double);
    return g_strdup_printf("%.1f (%.1f-%.1f)", w[n / 2], w[0], w[n - 1]);
}

static char *cpu_model(void)
{
    g_autofree char *info = NULL;
    char *p = NULL, *end = NULL;

    if (g_file_get_contents("/proc/cpuinfo", &info, NULL, NULL)) {
        p = strstr(info, "model name");
    }
    if (p) {
        p = strchr(p, ':');
    }
    if (p) {
        end = strchr(p, '\n');
    }
    if (!end) {
        return g_strdup("unknown CPU");
    }
    return g_strstrip(g_strndup(p + 1, end - p - 1));
}

int main(int argc, char **argv)
{
    unsigned reps = 7, nrows = ARRAY_SIZE(configs), r, i, v;
    uint64_t min_segs = 300000;
    g_autofree double *res = NULL;
    g_autofree double *units = NULL;
    g_autofree double *dpdk_units = NULL;
    g_autofree double *ratio = NULL;
    g_autofree char *cpu = cpu_model();

    Config count = { 0 };

    if (argc == 4 && !strcmp(argv[1], "--count")) {
        count.verify = !strcmp(argv[3], "verified");
        if (qemu_strtoui(argv[2], NULL, 10, &count.conns) ||
            !count.conns || count.conns > MAX_CONNS ||
            (!count.verify && strcmp(argv[3], "valid"))) {
            g_printerr("usage: rsc-microbench --count CONNECTIONS "
                       "valid|verified\n");
            return 1;
        }
    } else if ((argc > 1 && qemu_strtoui(argv[1], NULL, 10, &reps)) ||
               (argc > 2 && qemu_strtou64(argv[2], NULL, 10, &min_segs)) ||
               argc > 3 || !reps || !min_segs) {
        g_printerr("usage: rsc-microbench [REPETITIONS [SEGMENTS]]\n"
                   "       rsc-microbench --count CONNECTIONS "
                   "valid|verified\n");
        return 1;
    }
    res = g_new0(double, nrows * VAR__MAX * reps);
    units = g_new0(double, nrows * reps);
    dpdk_units = g_new0(double, nrows * reps);
    ratio = g_new0(double, reps);
    for (v = 0; v < VAR__MAX; v++) {
        Traffic *t = &traffic[v];

        for (i = 0; i < PAYLOAD; i++) {
            t->payload[i] = (i * 131 + 7) & 0xff;
        }
        t->payload_sum = rsc_csum_add(0, t->payload, PAYLOAD);
    }
    for (i = 0; i < NBUFS + REF_BUFS; i++) {
        /* touched now, so that no page fault is timed */
        uint8_t *buf = g_malloc(UNIT_BUF);

        memset(buf, 0, UNIT_BUF);
        /* the guest that does not copy never writes to its buffers */
        for (v = 0; v < VAR__MAX; v++) {
            bool ref = v == VAR_REF_COPY || v == VAR_REF_NO_COPY;
            Guest *g = &guests[v];

            if (ref == (i >= NBUFS)) {
                g->bufs[g->nfree] = g->free[g->nfree] = buf;
                g->nfree++;
            }
        }
    }

    if (count.conns) {
        /* two rounds, and at least 20000 segments */
        uint64_t round = (uint64_t)count.conns * ROUND_SEGS;

        count_run(&count, MAX(2, DIV_ROUND_UP(20000, round)) * round);
        return 0;
    }

    /* repetitions outermost, so that drift spreads over every cell */
    for (r = 0; r < reps; r++) {
        for (i = 0; i < nrows; i++) {
            uint64_t round = (uint64_t)configs[i].conns * ROUND_SEGS;
            uint64_t segs = DIV_ROUND_UP(min_segs, round) * round;
            double cell[VAR__MAX], per_unit = 0, dpdk_per_pkt = 0;

            measure(&configs[i], segs, r % VAR__MAX, cell, &per_unit,
                    &dpdk_per_pkt);
            for (v = 0; v < VAR__MAX; v++) {
                res[(i * VAR__MAX + v) * reps + r] = cell[v];
            }
            units[i * reps + r] = per_unit;
            dpdk_units[i * reps + r] = dpdk_per_pkt;
        }
    }

    g_print("RSC engine microbenchmark: %s, %u repetitions of >= %" PRIu64
            " segments, %u-byte payload, TCP timestamps, %u segments per "
            "connection per round.  ns per segment: in each repetition the "
            "median over batches of %u segments; the variants compared "
            "take turns of %u batches (copy, floor, copy on 1 connection; "
            "no copy, DPDK, no copy on 1 connection), \"/ 1 conn\" is "
            "against 1 connection with DATA_VALID in the same turns; cells "
            "show "
            "the median (min-max) over the repetitions, ratios the median of "
            "the per-repetition ratios.  "
            "%" PRIu64 " of %" PRIu64 " batches not counted (thread switched "
            "out).  DPDK GRO: DPDK %s's rte_gro_reassemble_burst() on the "
            "same frames, in bursts of 128 (it chains payloads, so compare "
            "it with \"no copy\"; it never checks checksums, so it has no "
            "\"verified\" row)\n\n",
            cpu, reps, min_segs, PAYLOAD, ROUND_SEGS, BATCH, BLOCK,
            preempted,
            batches, dpdk_gro_version());
    g_print("| connections | checksum | engine + copy | engine, no copy | "
            "one-copy floor | copy / floor | no copy / 1 conn | "
            "copy / 1 conn | segs/unit | DPDK GRO | no copy / DPDK | "
            "DPDK segs/packet |\n");
    g_print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (i = 0; i < nrows; i++) {
        double *copy = &res[(i * VAR__MAX + VAR_COPY) * reps];
        double *nocopy = &res[(i * VAR__MAX + VAR_NO_COPY) * reps];
        double *floor = &res[(i * VAR__MAX + VAR_FLOOR) * reps];
        double *dpdk = &res[(i * VAR__MAX + VAR_DPDK) * reps];
        double r_floor, r_nocopy1, r_copy1;
        g_autofree char *s_copy = NULL, *s_nocopy = NULL, *s_floor = NULL;
        g_autofree char *s_dpdk = NULL;

        for (r = 0; r < reps; r++) {
            ratio[r] = copy[r] / floor[r];
        }
        r_floor = median(ratio, reps);
        for (r = 0; r < reps; r++) {
            ratio[r] = nocopy[r] / res[(i * VAR__MAX + VAR_REF_NO_COPY) *
                                       reps + r];
        }
        r_nocopy1 = median(ratio, reps);
        for (r = 0; r < reps; r++) {
            ratio[r] = copy[r] / res[(i * VAR__MAX + VAR_REF_COPY) * reps + r];
        }
        r_copy1 = median(ratio, reps);
        s_copy = fmt_stat(copy, reps);
        s_nocopy = fmt_stat(nocopy, reps);
        s_floor = fmt_stat(floor, reps);
        if (configs[i].verify) {
            s_dpdk = g_strdup("- | - | -");
        } else {
            g_autofree char *cell = fmt_stat(dpdk, reps);

            for (r = 0; r < reps; r++) {
                ratio[r] = nocopy[r] / dpdk[r];
            }
            s_dpdk = g_strdup_printf("%s | %.2f | %.1f", cell,
                                     median(ratio, reps),
                                     median(&dpdk_units[i * reps], reps));
        }
        g_print("| %u | %s | %s | %s | %s | %.2f | %.2f | %.2f | %.1f | "
                "%s |\n",
                configs[i].conns,
                configs[i].verify ? "verified" : "DATA_VALID", s_copy,
                s_nocopy, s_floor, r_floor, r_nocopy1, r_copy1,
                median(&units[i * reps], reps), s_dpdk);
    }
    for (i = 0; i < NBUFS; i++) {
        g_free(guests[VAR_COPY].bufs[i]);
    }
    for (i = 0; i < REF_BUFS; i++) {
        g_free(guests[VAR_REF_COPY].bufs[i]);
    }
    return 0;
}
