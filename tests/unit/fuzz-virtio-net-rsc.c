/*
 * libFuzzer target for the virtio-net RSC engine on plain memory
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The input is a program for a fake backend and a fake guest: a header
 * that configures the engine and the guest's receive buffers, then
 * operations (receive a raw frame or a TCP segment built from parameters,
 * advance the clock, flush, switch RSC off and on, refill the buffers).
 *
 * Every frame offered is kept in a ledger until the guest sees it, and
 * every output is explained from the ledger.  On every input the target
 * checks that:
 * - an accepted frame reaches the guest exactly once, a refused one never;
 * - per connection, frames reach the guest in the order they were offered;
 * - a coalesced packet holds exactly the payload of the segments it
 *   merged, those segments were mergeable, and generated payload bytes
 *   still carry their pattern (pat_off(connection, sequence));
 * - coalesced headers are consistent: IP length fields, IPv4 header
 *   checksum, TCP pseudo-header checksum, virtio-net header fields, and
 *   the whole packet equals rsc_unit_expect() of the frames it holds;
 * - the engine holds nothing after a flush of everything, never more units
 *   than its flow table, and no unit past its deadline after expiry;
 * - its counters agree with what the guest saw;
 * and the sanitizers check memory accesses and undefined behaviour.  Each
 * frame sits in an arena with poisoned bytes right after it, so that a
 * read past its end is reported as for a heap block of its exact size.
 *
 * Input format (bytes past the end read as 0; 16-bit values little-endian):
 *   header   flags (bits 0-2 flow table size index, 3 two queues, 4 12-byte
 *            vnet header, 5 buffers never hold units, 6 RSC4 off, 7 RSC6
 *            off), interval in us (255 also selects the largest table),
 *            unit capacity (16 bits, 0: unlimited), guest buffers (0:
 *            unlimited, else n - 1), then bits 0-6: every n-th unit_write
 *            fails (0: none), bit 7: rule profile (selects the GRO profile
 *            where the engine has one; RSC_EXT otherwise)
 *   then operations, the low 3 bits of the first byte selecting:
 *   0, 1     segment: connection (bits 0-3, 4 toggles timestamps, 5 other
 *            queue), seq delta, ack delta, TCP flags (ACK inverted), window
 *            delta, payload length (16 bits: 0 the MSS, below 0xf000 up to
 *            2047 bytes, above in 16-byte steps), timestamp and options,
 *            padding, IP fields (IPv6: bits 3-5 an extension header),
 *            checksum/TTL/IP ID, vnet flags and GSO type, GSO size
 *   2        burst: connection, count, payload length
 *   3        segment as in 0, then corrupted: offset (16), XOR, cut (16)
 *   4        raw frame: queue, length (16), bytes
 *   5        advance the clock by n * 64 ns (16 bits) and expire
 *   6        flush all, or one queue (bit 7), with a cause (reset, VM stop,
 *            link down... as the device does)
 *   7        refill guest buffers (bit 7) or switch RSC4/RSC6 (bits 0-1)
 * build_seg() and run_op() are the reference.  An input offers at most
 * BUDGET frame bytes and MAX_FRAMES frames.
 *
 * LLVMFuzzerCustomMutator() mutates inputs operation by operation and
 * field by field (see the comment above it); raw byte mutation is one of
 * its choices.
 *
 * Build with clang -fsanitize=fuzzer,address,undefined, linking
 * hw/net/virtio-net-rsc.c, net/checksum.c, libqemuutil.a and glib
 * (scripts/fuzz.sh).  Frames are built and checked with
 * tests/include/virtio-net-rsc-frames.h, whose checksum code is not the
 * engine's, so that the harness does not share a bug with it.
 */

#include "qemu/osdep.h"
#include <sanitizer/asan_interface.h>
#include "qemu/bswap.h"
#include "net/eth.h"
#include "standard-headers/linux/virtio_net.h"
#include "hw/virtio/virtio-net-rsc.h"
#include "tests/include/virtio-net-rsc-frames.h"
#include "fuzz-virtio-net-rsc.h"

#define VHDR_LEN 12             /* backend vnet header, when there is one */
#define NCONNS 16               /* generated connections */
#define MSS 1448                /* default payload of a generated segment */
#define FRAME_MAX 70000         /* largest frame the generator builds */
#define BUDGET (128 * 1024)     /* frame bytes offered per input */
#define MAX_FRAMES 512          /* frames offered per input */
#define REDZONE 32              /* poisoned bytes after each frame */
#define ARENA_SIZE (BUDGET + MAX_FRAMES * (REDZONE + 16))
#define GUEST_SIZE (4 * BUDGET + 4 * NET_RSC_MAX_FRAME)
#define NCHAINS 64              /* engine configurations kept */
#define MAX_FIFOS (2 * MAX_FRAMES) /* connections and address pairs */
#define FIFO_SLOTS (4 * MAX_FIFOS)
#define NSTATS 64               /* counters the engine reports, at most */
#define IPV6_HLEN 40
#define TCP_HLEN 20
#define MERGE_FLAGS (TCP_FLAG_ACK | TCP_FLAG_PSH | TCP_FLAG_ECE | \
                     TCP_FLAG_CWR)
#define ECN_FLAGS (TCP_FLAG_ECE | TCP_FLAG_CWR)

static const unsigned max_flows_choice[8] = {
    8, 1, 2, 3, 4, 16, 64, 256
};

static const uint8_t gso_choice[8] = {
    VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
    VIRTIO_NET_HDR_GSO_UDP,
    VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN,
};

/* How a frame relates to the held units, by the contract. */
enum {
    CLS_NONE,   /* not attributable: not TCP/IP, malformed, RSC off */
    CLS_ADDRS,  /* of an address pair (fragment, options, bad TCP offset) */
    CLS_CONN,   /* of a TCP connection */
};

/* What the harness's own parser found in a frame. */
typedef struct Frame {
    int cls;
    bool v6;
    const uint8_t *l2;      /* Ethernet header */
    size_t l2len;           /* bytes from @l2 to the end of the buffer */
    uint8_t addrs[32];      /* source then destination address */
    uint32_t ports;         /* both ports, as in the header */
    /* The rest is set for CLS_CONN only. */
    unsigned iphl;          /* IP header bytes */
    unsigned tcphl;         /* TCP header bytes */
    unsigned ts_off;        /* TSval offset in the TCP header, 0: none */
    uint32_t payload_len;   /* TCP payload bytes, padding excluded */
    uint32_t seq;
    uint32_t ack;
    uint32_t tsval;
    uint32_t tsecr;
    uint32_t ipclass;       /* IPv4: ECN and DF; IPv6: class and label */
    uint16_t ip_id;         /* IPv4 identification */
    uint16_t win;
    uint16_t vhdr_len;      /* from the backend's vnet header */
    uint16_t gso_size;      /* from the backend's vnet header */
    uint8_t flags;          /* TCP flags */
    uint8_t ttl;            /* TTL or hop limit */
    uint8_t vflags;         /* from the backend's vnet header */
    uint8_t gso_type;       /* from the backend's vnet header */
    bool iph_ok;            /* IPv4 header checksum valid (IPv6: true) */
    bool tcp_res;           /* reserved TCP header bits set */
    bool opts_ok;           /* only NOP, EOL padding and one timestamp */
    bool csum_ok;           /* TCP checksum valid or vouched by the backend */
} Frame;

typedef struct Fifo Fifo;

/* A frame offered to the engine, until the guest has seen it. */
typedef struct Entry {
    uint8_t *buf;           /* the frame, vnet header included (owned) */
    size_t size;
    Frame f;
    unsigned queue;
    int conn;               /* generated connection, -1: raw or mutated */
    NetRscRxInfo info;      /* hash report given with it */
    bool consumed;          /* the guest has seen it */
    Fifo *cfifo;            /* of its connection, or NULL */
    Fifo *afifo;            /* of its address pair, or NULL */
    GList clink;
    GList alink;
} Entry;

/* Frames of one connection or address pair, in the order offered. */
typedef struct Key {
    uint8_t kind;           /* CLS_CONN or CLS_ADDRS */
    uint8_t queue;
    uint8_t v6;
    uint8_t pad;
    uint32_t ports;         /* CLS_CONN only */
    uint8_t addrs[32];
} Key;

struct Fifo {
    Key key;
    GQueue q;
};

/* A unit under construction in the fake guest's memory. */
typedef struct Unit {
    uint8_t *buf;
    size_t len;             /* bytes written */
    size_t alloc;
    Entry *first;           /* the frame it was begun with */
    unsigned queue;
    int64_t begin_ns;
    GList link;
} Unit;

/* Sender state of a generated connection. */
typedef struct Conn {
    uint32_t seq;
    uint32_t ack;
    uint32_t tsval;
    uint32_t tsecr;
    uint32_t flow;
    uint16_t win;
    uint16_t ipid;
} Conn;

/* Parameters of a generated segment. */
typedef struct SegParams {
    uint8_t conn;
    int8_t seq_d;
    int8_t ack_d;
    uint8_t flags;
    int8_t win_d;
    uint16_t len;
    uint8_t ts;
    uint8_t pad;
    uint8_t ip;
    uint8_t misc;
    uint8_t vnet;
    uint8_t gso;
} SegParams;

typedef struct Reader {
    const uint8_t *p;
    size_t n;
} Reader;

typedef struct Ctx {
    NetRscChain *chain;
    unsigned nqueues;
    unsigned max_flows;
    uint64_t interval;
    size_t vhl;
    size_t cap;             /* bytes a unit's buffers hold */
    int buffers;            /* guest buffers left, < 0: unlimited */
    unsigned wfail;         /* every wfail-th unit_write fails, 0: never */
    unsigned nwrites;
    bool cannot;            /* buffers can never hold units */
    bool rsc4;
    bool rsc6;
    int64_t now;
    bool gro;               /* profile bit of the header */
    size_t budget;          /* frame bytes left to offer */
    unsigned nframes;       /* frames offered (entries[] used) */
    size_t arena_used;      /* bytes of arena[] given to frames */
    size_t guest_used;      /* bytes of guest[] given to units */
    unsigned nunits;        /* units[] used */
    uint8_t *arena;         /* frames offered, each followed by a redzone */
    uint8_t *guest;         /* the guest's receive buffers */
    unsigned nfifos;        /* fifos[] used */
    unsigned pending;       /* accepted entries the guest has not seen */
    Entry *inflight;        /* the frame being received */
    GQueue units;           /* live units */
    unsigned live[2];       /* live units per queue */
    Conn conns[NCONNS];
    uint8_t scratch[FRAME_MAX];
    /* what the guest saw, to compare with the engine's counters */
    uint64_t accepted;
    uint64_t refused;
    uint64_t delivered;     /* frames delivered alone */
    uint64_t singles;       /* units ended without a header */
    uint64_t coalesced;     /* units ended with a header */
    uint64_t merged;        /* segments merged into another's unit */
    uint64_t absorbed;      /* ACKs absorbed as window updates */
    uint64_t stats0[NSTATS]; /* the engine's counters before the input */
    Entry entries[MAX_FRAMES];
    Fifo fifos[MAX_FIFOS];
    uint16_t fifo_index[FIFO_SLOTS]; /* 1 + index into fifos[], 0: free */
    Unit units_pool[MAX_FRAMES];
} Ctx;

/* Engines by configuration, reused from input to input. */
typedef struct ChainSlot {
    NetRscChain *chain;
    unsigned nqueues;
    unsigned max_flows;
    uint64_t interval;
    bool gro;
} ChainSlot;

/*
 * Payload bytes: connection @conn's byte at sequence number @seq is
 * pat[pat_off(conn, seq)], from rsc_payload_byte(); the table holds the
 * pattern twice so that any payload is one run of it.  pat_even/pat_odd:
 * sums of the bytes before index i at even/odd indices, so that the TCP
 * checksum of a payload costs nothing.
 */
#define PAT_LEN 65536
static uint8_t pat[2 * PAT_LEN];
static uint32_t pat_even[2 * PAT_LEN + 1];
static uint32_t pat_odd[2 * PAT_LEN + 1];

static Ctx ctx;
static ChainSlot chains[NCHAINS];
static unsigned next_chain;

static G_NORETURN G_GNUC_PRINTF(1, 2) void fail(const char *fmt, ...)
{
    char *msg;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_printerr("fuzz-virtio-net-rsc: invariant violated: %s\n", msg);
    __builtin_trap();
}

#define CHECK(cond, ...) do {   \
        if (!(cond)) {          \
            fail(__VA_ARGS__);  \
        }                       \
    } while (0)

static uint8_t rd8(Reader *r)
{
    if (!r->n) {
        return 0;
    }
    r->n--;
    return *r->p++;
}

static uint16_t rd16(Reader *r)
{
    uint16_t v = rd8(r);

    return v | (rd8(r) << 8);
}

/* One's complement sum of @len bytes, big-endian 16-bit words. */
static uint64_t sum16(const uint8_t *p, size_t len)
{
    uint64_t s = 0;
    size_t i;

    for (i = 0; i + 1 < len; i += 2) {
        s += (p[i] << 8) | p[i + 1];
    }
    if (len & 1) {
        s += p[len - 1] << 8;
    }
    return s;
}

static uint16_t fold(uint64_t s)
{
    while (s >> 16) {
        s = (s & 0xffff) + (s >> 16);
    }
    return s;
}

static uint64_t pseudo_sum(const uint8_t *addrs, bool v6, uint32_t tcp_len)
{
    return sum16(addrs, v6 ? 32 : 8) + IP_PROTO_TCP + (tcp_len >> 16) +
           (tcp_len & 0xffff);
}

static bool ipv6_ext_hdr(uint8_t nh)
{
    /* IANA's list of IPv6 extension header types */
    switch (nh) {
    case 0:
    case 43:
    case 44:
    case 50:
    case 51:
    case 60:
    case 135:
    case 139:
    case 140:
    case 253:
    case 254:
        return true;
    default:
        return false;
    }
}

/* Only NOPs, EOL padding and at most one timestamp option? */
static bool parse_options(const uint8_t *tcp, unsigned hl, unsigned *ts_off)
{
    unsigned i = TCP_HLEN;

    *ts_off = 0;
    while (i < hl) {
        if (tcp[i] == 0) {
            return true;
        }
        if (tcp[i] == 1) {
            i++;
        } else if (tcp[i] == 8 && !*ts_off && i + 10 <= hl &&
                   tcp[i + 1] == 10) {
            *ts_off = i + 2;
            i += 10;
        } else {
            return false;
        }
    }
    return true;
}

/*
 * Parse @buf the way the contract reads frames.  The classification
 * decides which held units a frame must follow: none when it is not
 * TCP/IP, malformed or RSC is off for its IP version; those of its address
 * pair when its TCP header cannot be read as such; those of its connection
 * otherwise.
 */
static void parse(const uint8_t *buf, size_t size, size_t vhl, bool rsc4,
                  bool rsc6, bool gro, int csum_known, Frame *f)
{
    const uint8_t *ip, *tcp;
    size_t l3len;
    uint32_t l4len;
    uint16_t et;

    memset(f, 0, sizeof(*f));
    if (size < vhl || size - vhl < ETH_HLEN) {
        return;
    }
    if (vhl >= sizeof(struct virtio_net_hdr)) {
        f->vflags = buf[0];
        f->gso_type = buf[1];
        f->vhdr_len = lduw_le_p(buf + 2);
        f->gso_size = lduw_le_p(buf + 4);
    }
    f->l2 = buf + vhl;
    f->l2len = size - vhl;
    ip = f->l2 + ETH_HLEN;
    l3len = f->l2len - ETH_HLEN;
    et = lduw_be_p(f->l2 + 12);
    if (et == ETH_P_IP) {
        unsigned ihl, tot;

        if (!rsc4 || l3len < 20) {
            return;
        }
        ihl = (ip[0] & 0xf) * 4;
        tot = lduw_be_p(ip + 2);
        if ((ip[0] >> 4) != 4 || ihl < 20 || tot > l3len || tot < ihl ||
            ip[9] != IP_PROTO_TCP) {
            return;
        }
        memcpy(f->addrs, ip + 12, 8);
        if ((lduw_be_p(ip + 6) & (IP_MF | IP_OFFMASK)) || ihl != 20) {
            f->cls = CLS_ADDRS;
            return;
        }
        f->iphl = 20;
        f->ttl = ip[8];
        f->ipclass = (ip[1] & 3) | (lduw_be_p(ip + 6) & IP_DF);
        f->ip_id = lduw_be_p(ip + 4);
        f->iph_ok = fold(sum16(ip, 20)) == 0xffff;
        l4len = tot - 20;
    } else if (et == ETH_P_IPV6) {
        if (!rsc6 || l3len < IPV6_HLEN || (ip[0] >> 4) != 6 ||
            lduw_be_p(ip + 4) > l3len - IPV6_HLEN) {
            return;
        }
        unsigned end = IPV6_HLEN + lduw_be_p(ip + 4), off = IPV6_HLEN;
        uint8_t nh = ip[6];

        f->v6 = true;
        memcpy(f->addrs, ip + 8, 32);
        /*
         * GRO merges hop-by-hop (first), destination options and routing
         * headers; read past them when they lie within the datagram (the
         * engine may be stricter: it then delivers the frame alone)
         */
        while (gro && (nh == 0 || nh == 60 || nh == 43) &&
               off + 8 <= end && (nh || off == IPV6_HLEN) &&
               off + (ip[off + 1] + 1) * 8 <= end) {
            nh = ip[off];
            off += (ip[off + 1] + 1) * 8;
        }
        if (nh != IP_PROTO_TCP) {
            if (ipv6_ext_hdr(nh)) {
                f->cls = CLS_ADDRS;
            }
            return;
        }
        f->iphl = off;
        f->ttl = ip[7];
        f->ipclass = ldl_be_p(ip) & 0x0fffffff;
        f->iph_ok = true;
        l4len = end - off;
    } else {
        return;
    }

    tcp = ip + f->iphl;
    if (l4len < TCP_HLEN || (tcp[12] >> 4) * 4 < TCP_HLEN ||
        (tcp[12] >> 4) * 4 > l4len) {
        f->cls = CLS_ADDRS;
        return;
    }
    f->cls = CLS_CONN;
    f->tcphl = (tcp[12] >> 4) * 4;
    f->ports = ldl_he_p(tcp);
    f->seq = ldl_be_p(tcp + 4);
    f->ack = ldl_be_p(tcp + 8);
    f->tcp_res = tcp[12] & 0xf;
    f->flags = tcp[13];
    f->win = lduw_be_p(tcp + 14);
    f->payload_len = l4len - f->tcphl;
    f->opts_ok = parse_options(tcp, f->tcphl, &f->ts_off);
    if (f->ts_off) {
        f->tsval = ldl_be_p(tcp + f->ts_off);
        f->tsecr = ldl_be_p(tcp + f->ts_off + 4);
    }
    /* the generator knows whether it spoiled the checksum: no second sum */
    f->csum_ok = (f->vflags & (VIRTIO_NET_HDR_F_DATA_VALID |
                               VIRTIO_NET_HDR_F_NEEDS_CSUM)) ||
                 (csum_known >= 0 ? csum_known :
                  fold(pseudo_sum(f->addrs, f->v6, l4len) +
                       sum16(tcp, l4len)) == 0xffff);
}

static const uint8_t *payload_of(const Frame *f)
{
    return f->l2 + ETH_HLEN + f->iphl + f->tcphl;
}

/* May this segment be part of a coalesced packet at all? */
static bool mergeable(const Ctx *c, const Frame *f)
{
    /* GRO: a change of CWR would not survive GSO */
    uint8_t flags = c->gro ? MERGE_FLAGS & ~TCP_FLAG_CWR : MERGE_FLAGS;

    return f->cls == CLS_CONN && f->gso_type == VIRTIO_NET_HDR_GSO_NONE &&
           f->iph_ok && (f->flags & TCP_FLAG_ACK) &&
           !(f->flags & ~flags) && !f->tcp_res && f->opts_ok &&
           f->csum_ok;
}

static unsigned pat_off(unsigned conn, uint32_t seq)
{
    return (seq + conn * 7919) % PAT_LEN;
}

static void pat_init(void)
{
    unsigned i;

    for (i = 0; i < 2 * PAT_LEN; i++) {
        pat[i] = rsc_payload_byte(0, i % PAT_LEN);
        pat_even[i + 1] = pat_even[i] + (i & 1 ? 0 : pat[i]);
        pat_odd[i + 1] = pat_odd[i] + (i & 1 ? pat[i] : 0);
    }
}

/* rsc_csum_add(0, pat + off, len), folded, from the prefix sums. */
static uint32_t pat_sum(unsigned off, uint32_t len)
{
    uint64_t even = pat_even[off + len] - pat_even[off];
    uint64_t odd = pat_odd[off + len] - pat_odd[off];

    return fold(off & 1 ? odd * 256 + even : even * 256 + odd);
}

static uint32_t key_hash(const Key *k)
{
    const uint8_t *b = (const uint8_t *)k;
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < sizeof(Key); i++) {
        h = (h ^ b[i]) * 16777619u;
    }
    return h;
}

/*
 * The FIFO of @kind (CLS_ADDRS or CLS_CONN) that @f belongs to on @queue,
 * from a table that lives as long as the input (no allocation).
 */
static Fifo *fifo_get(Ctx *c, int kind, unsigned queue, const Frame *f)
{
    Fifo *fifo;
    uint32_t i;
    Key k;

    memset(&k, 0, sizeof(k));
    k.kind = kind;
    k.queue = queue;
    k.v6 = f->v6;
    memcpy(k.addrs, f->addrs, f->v6 ? 32 : 8);
    if (kind == CLS_CONN) {
        k.ports = f->ports;
    }
    for (i = key_hash(&k);; i++) {
        uint16_t *slot = &c->fifo_index[i % FIFO_SLOTS];

        if (*slot) {
            fifo = &c->fifos[*slot - 1];
            if (!memcmp(&fifo->key, &k, sizeof(k))) {
                return fifo;
            }
            continue;
        }
        assert(c->nfifos < MAX_FIFOS);
        fifo = &c->fifos[c->nfifos++];
        fifo->key = k;
        g_queue_init(&fifo->q);
        *slot = c->nfifos;
        return fifo;
    }
}

/*
 * Room for one more frame of @size bytes in this input?  Else the input
 * ends: the budget keeps every input fast.
 */
static bool frame_room(Ctx *c, size_t size)
{
    if (size > c->budget || c->nframes == MAX_FRAMES) {
        c->budget = 0;
        return false;
    }
    c->budget -= size;
    return true;
}

/*
 * A copy of @size bytes of @data in the arena, followed by poisoned bytes;
 * frame_room() said there is room.
 */
static uint8_t *frame_copy(Ctx *c, const uint8_t *data, size_t size)
{
    uint8_t *p = c->arena + c->arena_used;

    c->arena_used += ROUND_UP(size, 16) + REDZONE;
    assert(c->arena_used <= ARENA_SIZE);
    ASAN_UNPOISON_MEMORY_REGION(p, size);
    memcpy(p, data, size);
    return p;
}

static Entry *entry_new(Ctx *c, uint8_t *buf, size_t size, unsigned queue,
                        int conn, int csum_known)
{
    Entry *e = &c->entries[c->nframes++];

    memset(e, 0, sizeof(*e));
    e->buf = buf;
    e->size = size;
    e->queue = queue;
    e->conn = conn;
    parse(buf, size, c->vhl, c->rsc4, c->rsc6, c->gro, csum_known, &e->f);
    /* a hash report for every other frame, as RSS would make it */
    if (size & 1) {
        e->info.hash_value = size * 2654435761u ^ queue;
        e->info.hash_report = 1 + size % 9;
    }
    if (e->f.cls >= CLS_ADDRS) {
        e->afifo = fifo_get(c, CLS_ADDRS, queue, &e->f);
        e->alink.data = e;
        g_queue_push_tail_link(&e->afifo->q, &e->alink);
    }
    if (e->f.cls == CLS_CONN) {
        e->cfifo = fifo_get(c, CLS_CONN, queue, &e->f);
        e->clink.data = e;
        g_queue_push_tail_link(&e->cfifo->q, &e->clink);
    }
    c->pending++;
    return e;
}

/* The guest has seen @e: any later read of it is a use after free. */
static void entry_free(Entry *e)
{
    ASAN_POISON_MEMORY_REGION(e->buf, e->size);
}

/* Take @e out of the ledger: the guest has seen it (or it was refused). */
static void entry_unlink(Ctx *c, Entry *e)
{
    CHECK(!e->consumed, "frame of %zu bytes reached the guest twice",
          e->size);
    if (e->afifo) {
        g_queue_unlink(&e->afifo->q, &e->alink);
    }
    if (e->cfifo) {
        g_queue_unlink(&e->cfifo->q, &e->clink);
    }
    e->consumed = true;
    c->pending--;
}

static void consume(Ctx *c, Entry *e)
{
    entry_unlink(c, e);
    if (e != c->inflight) {
        entry_free(e);
    }
}

/* @e reaches the guest now: everything offered before it must have. */
static void check_order(const Entry *e)
{
    if (e->cfifo) {
        CHECK(e->cfifo->q.head == &e->clink,
              "connection order: seq %u delivered before an earlier frame "
              "of its connection", e->f.seq);
    } else if (e->afifo) {
        CHECK(e->afifo->q.head == &e->alink,
              "address pair order: a frame delivered before an earlier "
              "frame of its address pair");
    }
}

static void check_info(Ctx *c, const NetRscRxInfo *info, const char *what)
{
    CHECK(info && info->hash_value == c->inflight->info.hash_value &&
          info->hash_report == c->inflight->info.hash_report,
          "%s without the frame's hash report", what);
}

static void check_inflight(Ctx *c, const uint8_t *buf, size_t size,
                           const char *what)
{
    CHECK(c->inflight, "%s outside virtio_net_rsc_receive", what);
    CHECK(buf == c->inflight->buf && size == c->inflight->size,
          "%s with a frame other than the one being received", what);
    CHECK(!c->inflight->consumed, "%s of a frame already delivered", what);
}

/*
 * @size bytes of guest memory for a unit.  Units double their memory as
 * they grow, so all of them together take at most four times the frame
 * bytes of an input; the heap is the fallback.
 */
static uint8_t *guest_alloc(Ctx *c, size_t size)
{
    uint8_t *p;

    if (size > GUEST_SIZE - c->guest_used) {
        return g_malloc(size);
    }
    p = c->guest + c->guest_used;
    c->guest_used += ROUND_UP(size, 16);
    return p;
}

static void guest_free(Ctx *c, uint8_t *p)
{
    if (p < c->guest || p >= c->guest + GUEST_SIZE) {
        g_free(p);
    }
}

static NetRscBegin fake_begin(void *opaque, unsigned queue,
                              const uint8_t *buf, size_t size, size_t keep,
                              const NetRscRxInfo *info, void **unit)
{
    Ctx *c = opaque;
    Entry *e = c->inflight;
    Unit *u;

    check_inflight(c, buf, size, "unit_begin");
    check_info(c, info, "unit_begin");
    CHECK(keep > 0 && keep <= size - c->vhl,
          "unit_begin keeps %zu bytes of a %zu-byte frame", keep,
          size - c->vhl);
    CHECK(queue == e->queue, "unit_begin on queue %u, frame on %u", queue,
          e->queue);
    CHECK(mergeable(c, &e->f) && e->f.payload_len > 0 &&
          !(c->gro && (e->f.flags & TCP_FLAG_PSH)),
          "unit begun with a frame that is not a mergeable data segment "
          "(class %d, flags 0x%x, %u bytes of payload, IP header %s, TCP "
          "options %s, checksum %s)", e->f.cls, e->f.flags,
          e->f.payload_len, e->f.iph_ok ? "ok" : "bad",
          e->f.opts_ok ? "ok" : "bad", e->f.csum_ok ? "ok" : "bad");
    CHECK(c->live[queue] < c->max_flows,
          "a unit begun with %u held on queue %u (max_flows %u)",
          c->live[queue], queue, c->max_flows);
    if (c->cannot || size - c->vhl > c->cap) {
        return NET_RSC_BEGIN_CANNOT;
    }
    if (c->buffers == 0) {
        return NET_RSC_BEGIN_NO_BUFFER;
    }
    if (c->buffers > 0) {
        c->buffers--;
    }
    assert(c->nunits < MAX_FRAMES);
    u = &c->units_pool[c->nunits++];
    memset(u, 0, sizeof(*u));
    u->len = size - c->vhl;
    u->alloc = u->len;
    u->buf = guest_alloc(c, u->alloc);
    memcpy(u->buf, buf + c->vhl, u->len);
    u->first = e;
    u->queue = queue;
    u->begin_ns = c->now;
    u->link.data = u;
    g_queue_push_tail_link(&c->units, &u->link);
    c->live[queue]++;
    *unit = u;
    return NET_RSC_BEGIN_OK;
}

static bool fake_write(void *opaque, void *unit, size_t offset,
                       const void *data, size_t len)
{
    Ctx *c = opaque;
    Entry *e = c->inflight;
    const uint8_t *d = data;
    Unit *u = unit;

    CHECK(e, "unit_write outside virtio_net_rsc_receive");
    CHECK(d >= e->buf && len <= e->size &&
          (size_t)(d - e->buf) <= e->size - len,
          "unit_write from outside the frame being received");
    CHECK(len > 0, "empty unit_write");
    CHECK(offset >= ETH_HLEN + 20 + TCP_HLEN,
          "unit_write at offset %zu overwrites headers", offset);
    if (c->wfail && ++c->nwrites % c->wfail == 0) {
        return false;
    }
    if (offset > c->cap || len > c->cap - offset) {
        return false;
    }
    if (offset + len > u->alloc) {
        size_t alloc = MIN(MAX(offset + len, u->alloc * 2), c->cap);

        uint8_t *nbuf = guest_alloc(c, alloc);

        memcpy(nbuf, u->buf, u->alloc);
        memset(nbuf + u->alloc, 0xa5, alloc - u->alloc);
        guest_free(c, u->buf);
        u->buf = nbuf;
        u->alloc = alloc;
    }
    memcpy(u->buf + offset, d, len);
    u->len = MAX(u->len, offset + len);
    return true;
}

/*
 * GRO: split the coalesced packet @out (@frame_len bytes, header @hdr)
 * into gso_size pieces the way Linux GSO does - sequence advanced, IPv4 ID
 * + 1 per piece, lengths and checksums fixed, PSH only on the last piece -
 * and compare each piece with the segment @in[i] that came in, byte for
 * byte.  A unit merged under the fixed-ID rule (DF set, all IDs equal)
 * may come back with incrementing IDs; a TCP checksum the backend vouched
 * for (DATA_VALID, NEEDS_CSUM) without it being right is not compared.
 */
static void check_gro_identity(const Frame *f0, const NetRscVnetHdr *hdr,
                               const uint8_t *out, size_t frame_len,
                               Entry *const *in, unsigned n)
{
    static uint8_t piece[RSC_SEG_MAX_UNIT];
    unsigned hl = hdr->hdr_len, mss = hdr->gso_size, l4 = ETH_HLEN + f0->iphl;
    uint16_t id0 = lduw_be_p(out + ETH_HLEN + 4);
    uint32_t seq0 = ldl_be_p(out + l4 + 4), i;
    size_t payload = frame_len - hl;
    bool fixed_id = !f0->v6;

    CHECK(DIV_ROUND_UP(payload, mss) == n, "GRO: %zu bytes of payload in "
          "pieces of %u, from %u segments", payload, mss, n);
    for (i = 0; i < n && fixed_id; i++) {
        fixed_id = in[i]->f.ip_id == id0 && (in[i]->f.ipclass & IP_DF);
    }
    for (i = 0; i < n; i++) {
        const Frame *f = &in[i]->f;
        uint32_t plen = MIN(mss, payload - i * mss);
        size_t len = hl + plen;
        uint8_t *ip = piece + ETH_HLEN, *tcp = piece + l4;
        bool same;

        memcpy(piece, out, hl);
        memcpy(piece + hl, out + hl + i * mss, plen);
        if (f0->v6) {
            stw_be_p(ip + 4, len - ETH_HLEN - IPV6_HLEN);
        } else {
            stw_be_p(ip + 2, len - ETH_HLEN);
            stw_be_p(ip + 4, id0 + i);
            stw_be_p(ip + 10, 0);
            stw_be_p(ip + 10, ~fold(sum16(ip, 20)));
        }
        stl_be_p(tcp + 4, seq0 + i * mss);
        if (i + 1 < n) {
            tcp[13] &= ~(TCP_FLAG_PSH | TCP_FLAG_FIN);
        }
        stw_be_p(tcp + 16, 0);
        stw_be_p(tcp + 16, ~fold(pseudo_sum(ip + (f0->v6 ? 8 : 12), f0->v6,
                                            len - l4) +
                                 sum16(tcp, len - l4)));
        if (f->vflags & (VIRTIO_NET_HDR_F_DATA_VALID |
                         VIRTIO_NET_HDR_F_NEEDS_CSUM)) {
            memcpy(tcp + 16, f->l2 + l4 + 16, 2);
        }
        CHECK(len == ETH_HLEN + f->iphl + f->tcphl + f->payload_len,
              "GRO: piece %u of %zu bytes, segment of %u", i, len,
              ETH_HLEN + f->iphl + f->tcphl + f->payload_len);
        same = !memcmp(piece, f->l2, len);
        if (!same && fixed_id) {
            /* the same but for the ID and the IPv4 header checksum */
            same = !memcmp(piece, f->l2, ETH_HLEN + 4) &&
                   !memcmp(piece + ETH_HLEN + 6, f->l2 + ETH_HLEN + 6, 4) &&
                   !memcmp(piece + ETH_HLEN + 12, f->l2 + ETH_HLEN + 12,
                           len - ETH_HLEN - 12);
        }
        if (!same) {
            size_t k = 0;

            while (k < len && piece[k] == f->l2[k]) {
                k++;
            }
            fail("GRO: piece %u of a coalesced packet (seq %u) is not the "
                 "segment that came in: byte %zu (headers %u) is 0x%02x, "
                 "was 0x%02x", i, f->seq, k, hl, piece[k], f->l2[k]);
        }
    }
}

/* Check the coalesced packet @out and consume the frames it holds. */
static void check_coalesced(Ctx *c, Unit *u, const NetRscVnetHdr *hdr,
                            const uint8_t *out, size_t frame_len)
{
    const Entry *e0 = u->first;
    const Frame *f0 = &e0->f;
    const Frame *last = f0;
    unsigned hl = ETH_HLEN + f0->iphl + f0->tcphl;
    unsigned n = 0, ttl = f0->ttl, psh = 0, i;
    uint32_t next_seq = f0->seq, tsval = f0->tsval, mss = f0->payload_len;
    size_t off = hl;
    bool short_seen = false;
    uint8_t want[RSC_SEG_ETH_HLEN + 60 + 60 + 60];
    unsigned want_segs;
    static Entry *done[MAX_FRAMES];
    static const uint8_t *segs[MAX_FRAMES];
    static size_t lens[MAX_FRAMES];
    static uint8_t expect[RSC_SEG_MAX_UNIT];
    uint8_t vhdr[RSC_SEG_VHDR_LEN];
    unsigned nsegs = 0;
    GList *l;
    const uint8_t *ip = out + ETH_HLEN, *tcp = ip + f0->iphl;

    CHECK(hl <= sizeof(want), "coalesced packet with %u header bytes", hl);
    if (c->gro) {
        CHECK(hdr->flags == VIRTIO_NET_HDR_F_NEEDS_CSUM,
              "GRO: coalesced packet with vnet flags 0x%x", hdr->flags);
        CHECK(hdr->csum_start == ETH_HLEN + f0->iphl &&
              hdr->csum_offset == 16, "GRO: csum_start %u csum_offset %u",
              hdr->csum_start, hdr->csum_offset);
        CHECK(mss && frame_len > hl, "GRO: MSS %u, %zu bytes", mss,
              frame_len);
        want_segs = DIV_ROUND_UP(frame_len - hl, mss);
    } else {
        CHECK(hdr->flags == (VIRTIO_NET_HDR_F_NEEDS_CSUM |
                             VIRTIO_NET_HDR_F_RSC_INFO),
              "coalesced packet with vnet flags 0x%x", hdr->flags);
        CHECK(hdr->csum_offset == 0, "duplicate ACK count %u",
              hdr->csum_offset);
        want_segs = hdr->csum_start;
    }
    CHECK(hdr->gso_type == (f0->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 :
                                     VIRTIO_NET_HDR_GSO_TCPV4),
          "coalesced packet with gso_type %u", hdr->gso_type);
    CHECK(hdr->hdr_len == hl, "hdr_len %u, headers are %u bytes",
          hdr->hdr_len, hl);
    CHECK(hdr->gso_size == mss, "gso_size %u, first segment carries %u",
          hdr->gso_size, mss);
    CHECK(want_segs >= 2, "coalesced packet of %u segments", want_segs);
    CHECK(frame_len <= NET_RSC_MAX_FRAME, "coalesced frame of %zu bytes",
          frame_len);
    CHECK(frame_len > hl && frame_len - hl <= NET_RSC_MAX_FRAME - hl,
          "coalesced frame of %zu bytes, headers %u", frame_len, hl);
    CHECK(frame_len <= u->len, "frame of %zu bytes, only %zu written",
          frame_len, u->len);

    /* The frames it holds: the first ones of its connection, in order. */
    CHECK(e0->cfifo && e0->cfifo->q.head == &e0->clink,
          "coalesced packet does not start with its connection's oldest "
          "frame");
    for (l = e0->cfifo->q.head; l; l = l->next) {
        const Entry *e = l->data;
        const Frame *f = &e->f;

        if (n == want_segs && (f->payload_len || e == c->inflight)) {
            break;
        }
        CHECK(mergeable(c, f), "merged a segment that is not mergeable "
              "(seq %u flags 0x%x)", f->seq, f->flags);
        CHECK(f->seq == next_seq, "merged seq %u, expected %u", f->seq,
              next_seq);
        CHECK((int32_t)(f->ack - last->ack) >= 0, "merged an older ACK");
        CHECK(f->ipclass == f0->ipclass, "merged a different ECN/DF/class");
        CHECK((f->flags & ECN_FLAGS) == (f0->flags & ECN_FLAGS),
              "merged a different ECE/CWR");
        CHECK(!f->ts_off == !f0->ts_off, "merged timestamp with none");
        CHECK(!f->ts_off || (int32_t)(f->tsval - tsval) >= 0,
              "merged an older timestamp");
        if (f->payload_len) {
            CHECK(!short_seen, "a segment merged after a short one");
            CHECK(f->payload_len <= mss, "merged %u bytes, MSS %u",
                  f->payload_len, mss);
            CHECK(off + f->payload_len <= frame_len,
                  "coalesced frame shorter than its segments");
            CHECK(!memcmp(out + off, payload_of(f), f->payload_len),
                  "payload of seq %u corrupted in a coalesced packet",
                  f->seq);
            CHECK(e->conn < 0 ||
                  !memcmp(out + off, pat + pat_off(e->conn, f->seq),
                          f->payload_len),
                  "conn %d payload at seq %u wrong", e->conn, f->seq);
            short_seen = f->payload_len < mss;
            off += f->payload_len;
            next_seq += f->payload_len;
            psh |= f->flags & TCP_FLAG_PSH;
            n++;
        } else {
            /* a pure ACK the unit absorbed as a window update */
            CHECK(!c->gro, "GRO: a pure ACK absorbed");
            CHECK(e != c->inflight && n >= 2,
                  "pure ACK absorbed by a unit of %u segments", n);
            CHECK(f->ack == last->ack && f->win != last->win &&
                  !(f->flags & TCP_FLAG_PSH),
                  "absorbed a pure ACK that is not a window update");
            c->absorbed++;
        }
        ttl = MIN(ttl, f->ttl);
        tsval = f->tsval;
        last = f;
        segs[nsegs] = f->l2;
        lens[nsegs] = f->l2len;
        done[nsegs++] = l->data;
    }
    CHECK(n == want_segs, "packet claims %u segments, holds %u",
          want_segs, n);
    CHECK(off == frame_len, "coalesced frame %zu bytes, segments %zu",
          frame_len, off);

    /* Headers: the first segment's, patched with the latest values. */
    memcpy(want, f0->l2, hl);
    if (f0->v6) {
        stw_be_p(want + ETH_HLEN + 4, frame_len - ETH_HLEN - IPV6_HLEN);
        want[ETH_HLEN + 7] = ttl;
        CHECK(lduw_be_p(ip + 4) == frame_len - ETH_HLEN - IPV6_HLEN,
              "IPv6 payload length %u in a %zu-byte frame",
              lduw_be_p(ip + 4), frame_len);
    } else {
        stw_be_p(want + ETH_HLEN + 2, frame_len - ETH_HLEN);
        want[ETH_HLEN + 8] = ttl;
        memcpy(want + ETH_HLEN + 10, ip + 10, 2);
        CHECK(lduw_be_p(ip + 2) == frame_len - ETH_HLEN,
              "IPv4 total length %u in a %zu-byte frame",
              lduw_be_p(ip + 2), frame_len);
        CHECK(fold(sum16(ip, 20)) == 0xffff, "bad IPv4 header checksum");
    }
    stl_be_p(want + ETH_HLEN + f0->iphl + 8, last->ack);
    want[ETH_HLEN + f0->iphl + 13] |= psh;
    stw_be_p(want + ETH_HLEN + f0->iphl + 14, last->win);
    memcpy(want + ETH_HLEN + f0->iphl + 16, tcp + 16, 2);
    if (f0->ts_off) {
        stl_be_p(want + ETH_HLEN + f0->iphl + f0->ts_off, last->tsval);
        stl_be_p(want + ETH_HLEN + f0->iphl + f0->ts_off + 4, last->tsecr);
    }
    CHECK(!memcmp(want, out, hl), "coalesced headers differ from the "
          "first segment's patched with the latest values");
    CHECK(lduw_be_p(tcp + 16) ==
          fold(pseudo_sum(ip + (f0->v6 ? 8 : 12), f0->v6,
                          frame_len - ETH_HLEN - f0->iphl)),
          "TCP checksum field is not the pseudo-header sum");

    /*
     * The same from the shared frame checker, as a whole (it reads no
     * IPv6 extension header but hop-by-hop).
     */
    if (f0->iphl == (f0->v6 ? IPV6_HLEN : 20) ||
        out[ETH_HLEN + 6] == 0) {
        CHECK(rsc_unit_expect(segs, lens, nsegs, expect, vhdr) == frame_len &&
              !memcmp(expect, out, frame_len),
              "coalesced packet differs from rsc_unit_expect()");
        CHECK(lduw_le_p(vhdr + 2) == hdr->hdr_len &&
              lduw_le_p(vhdr + 4) == hdr->gso_size &&
              (c->gro || lduw_le_p(vhdr + 6) == hdr->csum_start),
              "virtio-net header differs from rsc_unit_expect()");
    }
    if (c->gro) {
        check_gro_identity(f0, hdr, out, frame_len, done, nsegs);
    }

    c->merged += n - 1;
    for (i = 0; i < nsegs; i++) {
        consume(c, done[i]);
    }
}

static void fake_end(void *opaque, void *unit, const NetRscVnetHdr *hdr,
                     const uint8_t *l234, size_t l234_len, size_t frame_len)
{
    Ctx *c = opaque;
    Unit *u = unit;
    Entry *e0 = u->first;

    CHECK(!e0->consumed, "unit of a frame already delivered");
    if (hdr) {
        CHECK(l234 && l234_len == hdr->hdr_len && l234_len <= u->len,
              "unit_end with %zu header bytes, hdr_len %u", l234_len,
              hdr->hdr_len);
        memcpy(u->buf, l234, l234_len);
        check_coalesced(c, u, hdr, u->buf, frame_len);
        c->coalesced++;
    } else {
        CHECK(frame_len == e0->f.l2len, "single unit of %zu bytes, frame "
              "was %zu", frame_len, e0->f.l2len);
        CHECK(!memcmp(u->buf, e0->f.l2, frame_len),
              "single unit changed: not delivered untouched");
        check_order(e0);
        consume(c, e0);
        c->singles++;
    }
    c->live[u->queue]--;
    g_queue_unlink(&c->units, &u->link);
    guest_free(c, u->buf);
}

static ssize_t fake_deliver(void *opaque, unsigned queue, const uint8_t *buf,
                            size_t size, const NetRscVnetHdr *hdr,
                            const NetRscRxInfo *info)
{
    Ctx *c = opaque;
    Entry *e = c->inflight;
    const Frame *f;

    check_inflight(c, buf, size, "deliver");
    check_info(c, info, "deliver");
    f = &e->f;
    CHECK(queue == e->queue, "deliver on queue %u, frame on %u", queue,
          e->queue);
    /* RSC_EXT: a large packet from the backend gets its segment count */
    if (!c->gro && f->cls == CLS_CONN &&
        f->gso_type != VIRTIO_NET_HDR_GSO_NONE &&
        (f->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) ==
        (f->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4)) {
        unsigned segs = f->gso_size ?
            MIN(DIV_ROUND_UP(f->payload_len, f->gso_size), UINT16_MAX) : 1;

        CHECK(hdr, "backend GSO packet delivered without RSC_INFO");
        CHECK(hdr->flags == (f->vflags | VIRTIO_NET_HDR_F_RSC_INFO) &&
              hdr->gso_type == f->gso_type &&
              hdr->hdr_len == f->vhdr_len &&
              hdr->gso_size == f->gso_size &&
              hdr->csum_start == segs && hdr->csum_offset == 0,
              "backend GSO packet: bad RSC_INFO header");
    } else {
        CHECK(!hdr, "frame delivered alone with a new vnet header");
    }
    if (c->buffers == 0) {
        return 0;
    }
    if (c->buffers > 0) {
        c->buffers--;
    }
    check_order(e);
    entry_unlink(c, e);
    c->delivered++;
    return size;
}

static int64_t fake_now(void *opaque)
{
    Ctx *c = opaque;

    return c->now;
}

static const NetRscOps fake_ops = {
    .unit_begin = fake_begin,
    .unit_write = fake_write,
    .unit_end = fake_end,
    .deliver = fake_deliver,
    .now = fake_now,
};

/* Checks after every operation. */
static void check_state(Ctx *c)
{
    unsigned held = virtio_net_rsc_held(c->chain);

    CHECK(held == c->units.length, "engine holds %u units, guest %u",
          held, c->units.length);
    CHECK(held || !c->pending, "%u accepted frames lost: nothing held",
          c->pending);
}

/* Check the deadlines of @queue after expiry at c->now; returns it. */
static void check_deadline(Ctx *c, unsigned queue, int64_t due)
{
    int64_t oldest = -1;
    GList *l;

    for (l = c->units.head; l; l = l->next) {
        Unit *u = l->data;

        if (u->queue == queue && (oldest < 0 || u->begin_ns < oldest)) {
            oldest = u->begin_ns;
        }
    }
    if (oldest < 0) {
        CHECK(due == -1, "deadline %" PRId64 " with no unit held", due);
        return;
    }
    CHECK(due == oldest + (int64_t)c->interval,
          "deadline %" PRId64 ", oldest unit begun at %" PRId64, due,
          oldest);
    CHECK(due > c->now, "unit past its deadline after expiry");
}

static void check_flushed(Ctx *c)
{
    CHECK(virtio_net_rsc_held(c->chain) == 0 && c->units.length == 0,
          "units held after a flush of everything");
    CHECK(c->pending == 0, "%u accepted frames never delivered", c->pending);
}

/*
 * Offer the frame @buf (owned, exactly @size bytes so that the sanitizer
 * sees any read past it).  Returns whether it was accepted.
 */
static bool receive(Ctx *c, unsigned queue, uint8_t *buf, size_t size,
                    int conn, int csum_known)
{
    Entry *e = entry_new(c, buf, size, queue, conn, csum_known);
    ssize_t ret;
    GList *l;

    c->inflight = e;
    ret = virtio_net_rsc_receive(c->chain, queue, buf, size, c->vhl,
                                 e->info.hash_report || e->info.hash_value ?
                                 &e->info : NULL);
    c->inflight = NULL;
    if (ret == 0) {
        CHECK(!e->consumed, "refused frame reached the guest");
        for (l = c->units.head; l; l = l->next) {
            CHECK(((Unit *)l->data)->first != e,
                  "refused frame kept in a unit");
        }
        entry_unlink(c, e);
        entry_free(e);
        c->refused++;
        return false;
    }
    CHECK(ret == size, "receive returned %zd for %zu bytes", ret, size);
    c->accepted++;
    if (e->consumed) {
        entry_free(e);
    }
    return true;
}

static void read_seg(Reader *r, SegParams *p)
{
    p->conn = rd8(r);
    p->seq_d = rd8(r);
    p->ack_d = rd8(r);
    p->flags = rd8(r);
    p->win_d = rd8(r);
    p->len = rd16(r);
    p->ts = rd8(r);
    p->pad = rd8(r);
    p->ip = rd8(r);
    p->misc = rd8(r);
    p->vnet = rd8(r);
    p->gso = rd8(r);
}

/*
 * Build the segment @p describes into c->scratch and advance the sender
 * state of its connection.  Returns the frame's length.
 */
static size_t build_seg(Ctx *c, const SegParams *p, unsigned *queue)
{
    static const uint8_t mac_dst[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    static const uint8_t mac_src[6] = { 0x52, 0x54, 0x00, 0x65, 0x43, 0x21 };
    unsigned cn = p->conn % NCONNS, ext = (p->ip >> 3) & 7;
    Conn *k = &c->conns[cn];
    bool v6 = cn & 8;
    bool ts = !!(cn & 2) ^ !!(p->conn & 0x10);
    uint8_t *buf = c->scratch, *l2 = buf + c->vhl, *ip = l2 + ETH_HLEN;
    uint8_t opts[40];
    RscSeg s = {
        .dst_mac = mac_dst, .src_mac = mac_src, .v6 = v6,
        .tos = p->ip & 3, .ttl = 64 - ((p->misc >> 2) & 0x1f),
        .sport = 1000 + cn, .dport = 80, .opts = opts,
        .trailer = p->pad, .trailer_byte = 0xe0,
        .ns = p->misc & 2, .tcp_csum_xor = p->misc & 1,
    };
    uint32_t maxlen;
    size_t size;

    *queue = (cn + !!(p->conn & 0x20)) % c->nqueues;
    k->ack += p->ack_d;
    k->win += p->win_d * 64;
    k->tsecr++;
    /* the IP ID counts up by one, jumps, or (bit 7 of misc) stays */
    k->ipid += p->misc & 0x80 ? 0 : p->ip & 0x80 ? 1000 : 1;
    if (v6 && (p->ip & 0x80)) {
        k->flow ^= 1;
    }
    if (ts) {
        k->tsval += p->ts & 0x10 ? -(p->ts & 0xf) : (p->ts & 0xf);
        if (p->ts & 0x20) {
            memcpy(opts, "\x08\x0a\0\0\0\0\0\0\0\0\0\0", 12);
        } else {
            memcpy(opts, rsc_seg_ts_opts, 12);
        }
        s.opts_len = 12;
        s.tsval = k->tsval;
        s.tsecr = k->tsecr;
    }
    if (p->ts & 0x40) {
        memcpy(opts + s.opts_len, "\x02\x04\x05\xb4", 4);  /* MSS */
        s.opts_len += 4;
    }
    if (p->ts & 0x80) {
        memcpy(opts + s.opts_len, "\x03\x00\x01\x01", 4);  /* length 0 */
        s.opts_len += 4;
    }
    if (v6) {
        memcpy(s.src_ip, "\xfd\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 15);
        s.src_ip[15] = cn & 4 ? 3 : 1;
        memcpy(s.dst_ip, s.src_ip, 15);
        s.dst_ip[15] = 2;
        s.flow = k->flow;
        s.hbh = ext != 0;
    } else {
        memcpy(s.src_ip, cn & 4 ? "\x0a\x00\x01\x03" : "\x0a\x00\x00\x01", 4);
        memcpy(s.dst_ip, "\x0a\x00\x00\x02", 4);
        s.df = !(p->ip & 4);
        s.frag = (p->ip & 8 ? IP_MF : 0) | (p->ip & 0x10 ? 1 : 0);
        s.ip_id = k->ipid;
        s.ip_opts_len = p->ip & 0x20 ? 4 : 0;
        s.ip_csum_xor = p->ip & 0x40 ? 1 : 0;
    }
    s.seq = k->seq + p->seq_d;
    s.ack = k->ack;
    s.win = k->win;
    /* TCP flags as given, but ACK unless asked to leave it out */
    s.flags = p->flags ^ TCP_FLAG_ACK;

    /* 0: the MSS; mostly small payloads, large ones from 0xf000 on */
    maxlen = 65535 - TCP_HLEN - s.opts_len - rsc_seg_ip_hlen(&s) +
             (v6 ? IPV6_HLEN : 0);
    if (!p->len) {
        s.plen = MSS;
    } else if (p->len < 0xf000) {
        s.plen = (p->len - 1) & 0x7ff;
    } else {
        s.plen = MIN((p->len & 0xfff) * 16u, maxlen);
    }
    s.payload = pat + pat_off(cn, s.seq);
    size = c->vhl + rsc_seg_len(&s);
    if (!frame_room(c, size)) {
        return 0;
    }
    /* rsc_seg_build(), with the payload's sum from the table */
    memcpy(l2 + rsc_seg_put_headers(&s, l2), s.payload, s.plen);
    memset(l2 + rsc_seg_hdr_len(&s) + s.plen, s.trailer_byte, s.trailer);
    rsc_seg_put_tcp_csum(&s, l2, pat_sum(pat_off(cn, s.seq), s.plen));

    /*
     * IPv6 extension headers: the builder's hop-by-hop header rewritten
     * into another one; the TCP checksum does not cover it.
     */
    switch (v6 ? ext : 0) {
    case 1:     /* fragment, more to come */
    case 2:     /* atomic fragment: offset 0, no more */
        ip[6] = 44;
        memcpy(ip + IPV6_HLEN + 1, ext == 1 ? "\0\0\x01\0\0\x12\x34" :
                                              "\0\0\0\0\0\x12\x34", 7);
        break;
    case 4:     /* destination options, PadN */
        ip[6] = 60;
        break;
    case 5:     /* routing, segments left 0 */
    case 7:     /* routing, segments left 1 */
        ip[6] = 43;
        memcpy(ip + IPV6_HLEN + 1, ext == 5 ? "\0\x04\0\0\0\0\0" :
                                              "\0\x04\x01\0\0\0\0", 7);
        break;
    case 6:     /* hop-by-hop with other options: not byte-identical */
        memcpy(ip + IPV6_HLEN + 1, "\0\x05\x02\0\0\x01\0", 7);
        break;
    }
    if (c->vhl) {
        memset(buf, 0, c->vhl);
        buf[0] = p->vnet & 3;
        buf[1] = gso_choice[(p->vnet >> 2) & 7];
        stw_le_p(buf + 2, rsc_seg_hdr_len(&s));
        stw_le_p(buf + 4, p->gso * 16);
        if (buf[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
            stw_le_p(buf + 6, rsc_seg_l3(&s) + rsc_seg_ip_hlen(&s));
            stw_le_p(buf + 8, 16);
        }
    }
    k->seq = s.seq + s.plen + !!(s.flags & TCP_FLAG_SYN) +
             !!(s.flags & TCP_FLAG_FIN);
    return size;
}

/* Build, optionally corrupt, and offer one segment. */
static void send_seg(Ctx *c, const SegParams *p, bool mutate,
                     uint16_t mut_off, uint8_t mut_xor, uint16_t cut)
{
    unsigned cn = p->conn % NCONNS, queue;
    Conn saved = c->conns[cn];
    size_t size = build_seg(c, p, &queue);

    if (!size) {
        return;
    }
    if (mutate) {
        c->scratch[mut_off % size] ^= mut_xor;
        if (cut > 1) {
            size = MIN(size, cut - 1u);
        }
    }
    if (!receive(c, queue, frame_copy(c, c->scratch, size), size,
                 mutate ? -1 : (int)cn, mutate ? -1 : !(p->misc & 1))) {
        /* the backend keeps it and sends it again later */
        c->conns[cn] = saved;
    }
}

static void op_raw(Ctx *c, Reader *r)
{
    unsigned queue = rd8(r) % c->nqueues;
    size_t size = MIN(rd16(r), r->n);

    if (size && frame_room(c, size)) {
        /* a backend never offers an empty frame */
        receive(c, queue, frame_copy(c, r->p, size), size, -1, -1);
    }
    r->p += size;
    r->n -= size;
}

static void op_burst(Ctx *c, Reader *r)
{
    SegParams p = { .conn = rd8(r) };
    unsigned count = 1 + rd8(r) % 64, i;

    p.len = rd16(r);
    for (i = 0; i < count && c->budget; i++) {
        send_seg(c, &p, false, 0, 0, 0);
    }
}

static void op_time(Ctx *c, Reader *r)
{
    unsigned q;

    c->now += rd16(r) * 64;
    for (q = 0; q < c->nqueues; q++) {
        int64_t due = virtio_net_rsc_expire(c->chain, q, c->now);

        check_deadline(c, q, due);
        CHECK(virtio_net_rsc_deadline(c->chain, q) == due,
              "deadline differs from what expire returned");
    }
}

static void op_flush(Ctx *c, Reader *r)
{
    uint8_t b = rd8(r);
    NetRscFlushCause cause = b % NET_RSC_FLUSH__MAX;
    unsigned q = (b >> 6) % c->nqueues;
    GList *l;

    if (b & 0x80) {
        virtio_net_rsc_flush_queue(c->chain, q, cause);
        for (l = c->units.head; l; l = l->next) {
            CHECK(((Unit *)l->data)->queue != q,
                  "unit held after its queue was flushed");
        }
        check_deadline(c, q, virtio_net_rsc_deadline(c->chain, q));
    } else {
        virtio_net_rsc_flush_all(c->chain, cause);
        check_flushed(c);
    }
}

static void op_misc(Ctx *c, Reader *r)
{
    uint8_t b = rd8(r);

    if (b & 0x80) {
        /* the guest posts buffers */
        c->buffers = b == 0xff ? -1 : (b & 0x7f);
    } else if ((b & 1) != c->rsc4 || !!(b & 2) != c->rsc6) {
        /* the guest changes its offloads: the device flushes first */
        virtio_net_rsc_flush_all(c->chain, NET_RSC_FLUSH_OFFLOADS);
        check_flushed(c);
        c->rsc4 = b & 1;
        c->rsc6 = b & 2;
        virtio_net_rsc_configure(c->chain, c->gro ? NET_RSC_PROFILE_GRO :
                                 NET_RSC_PROFILE_RSC_EXT, c->rsc4, c->rsc6);
    }
}

static void run_op(Ctx *c, Reader *r)
{
    SegParams p;
    uint16_t off, cut;
    uint8_t x;

    switch (rd8(r) & 7) {
    case 0:
    case 1:
        read_seg(r, &p);
        send_seg(c, &p, false, 0, 0, 0);
        break;
    case 2:
        op_burst(c, r);
        break;
    case 3:
        read_seg(r, &p);
        off = rd16(r);
        x = rd8(r);
        cut = rd16(r);
        send_seg(c, &p, true, off, x, cut);
        break;
    case 4:
        op_raw(c, r);
        break;
    case 5:
        op_time(c, r);
        break;
    case 6:
        op_flush(c, r);
        break;
    default:
        op_misc(c, r);
        break;
    }
}

/* Walks the engine's counters: their values, or checks of them. */
typedef struct StatWalk {
    unsigned i;             /* index of the counter */
    uint64_t *vals;         /* stat_get: values */
    uint64_t sums[2];       /* check_stat: bypass and flush counters */
} StatWalk;

static void stat_get(const char *name, uint64_t value, void *opaque)
{
    StatWalk *w = opaque;

    assert(w->i < NSTATS);
    w->vals[w->i++] = value;
}

/* The engine's counters against what the guest saw in this input. */
static void check_stat(const char *name, uint64_t value, void *opaque)
{
    StatWalk *w = opaque;
    const Ctx *c = &ctx;

    assert(w->i < NSTATS);
    value -= c->stats0[w->i++];
    if (g_str_has_prefix(name, "bypass-")) {
        w->sums[0] += value;
    } else if (g_str_has_prefix(name, "flush-")) {
        w->sums[1] += value;
    } else if (!strcmp(name, "segments-received")) {
        CHECK(value == c->accepted, "segments-received %" PRIu64
              ", accepted %" PRIu64, value, c->accepted);
    } else if (!strcmp(name, "segments-merged")) {
        CHECK(value == c->merged, "segments-merged %" PRIu64 ", saw %"
              PRIu64, value, c->merged);
    } else if (!strcmp(name, "units-delivered")) {
        CHECK(value == c->coalesced, "units-delivered %" PRIu64 ", saw %"
              PRIu64, value, c->coalesced);
    } else if (!strcmp(name, "frames-uncoalesced")) {
        CHECK(value == c->delivered + c->singles, "frames-uncoalesced %"
              PRIu64 ", saw %" PRIu64, value, c->delivered + c->singles);
    } else if (!strcmp(name, "window-updates")) {
        CHECK(value == c->absorbed, "window-updates %" PRIu64 ", saw %"
              PRIu64, value, c->absorbed);
    } else if (!strcmp(name, "not-accepted")) {
        CHECK(value == c->refused, "not-accepted %" PRIu64 ", refused %"
              PRIu64, value, c->refused);
    }
}

/*
 * The engine for this configuration.  Engines are kept from input to
 * input (each input ends with everything flushed, which leaves an engine
 * as it was new but for the order of its free flow entries, which decides
 * nothing), so that flow tables are not set up again and again; counters
 * are compared as differences.
 */
static NetRscChain *chain_get(Ctx *c)
{
    ChainSlot *slot;
    unsigned i;
    for (i = 0; i < NCHAINS; i++) {
        slot = &chains[i];
        if (slot->chain && slot->nqueues == c->nqueues &&
            slot->max_flows == c->max_flows &&
            slot->interval == c->interval && slot->gro == c->gro) {
            return slot->chain;
        }
    }
    slot = &chains[next_chain++ % NCHAINS];
    virtio_net_rsc_delete(slot->chain);
    slot->chain = virtio_net_rsc_new(&fake_ops, c, c->nqueues, c->max_flows,
                                     c->interval);
    slot->nqueues = c->nqueues;
    slot->max_flows = c->max_flows;
    slot->interval = c->interval;
    slot->gro = c->gro;
    return slot->chain;
}

static void setup(Ctx *c, Reader *r)
{
    uint8_t h0 = rd8(r), h1 = rd8(r), h4, h5;
    uint16_t cap = rd16(r);
    StatWalk w = { .vals = c->stats0 };
    unsigned i;

    h4 = rd8(r);
    h5 = rd8(r);
    c->chain = NULL;
    c->inflight = NULL;
    c->pending = 0;
    c->nwrites = 0;
    c->nframes = 0;
    c->nunits = 0;
    c->arena_used = 0;
    c->guest_used = 0;
    memset(c->live, 0, sizeof(c->live));
    memset(&c->accepted, 0, offsetof(Ctx, stats0) - offsetof(Ctx, accepted));
    c->max_flows = h1 == 0xff ? NET_RSC_MAX_MAX_FLOWS :
                   max_flows_choice[h0 & 7];
    c->nqueues = h0 & 8 ? 2 : 1;
    c->vhl = h0 & 0x10 ? VHDR_LEN : 0;
    c->cannot = h0 & 0x20;
    c->rsc4 = !(h0 & 0x40);
    c->rsc6 = !(h0 & 0x80);
    c->interval = h1 * 1000;
    c->cap = cap ? 60 + cap : NET_RSC_MAX_FRAME + 64;
    c->buffers = h4 ? h4 - 1 : -1;
    c->wfail = h5 & 0x7f;
    c->gro = h5 & 0x80;
    c->now = 1000000;
    c->budget = BUDGET;
    for (i = 0; i < NCONNS; i++) {
        c->conns[i].seq = 0xfffff000u + i * 1000003u;
        c->conns[i].ack = 1;
        c->conns[i].tsval = 0xfffffff0u;
        c->conns[i].win = 1000;
        c->conns[i].flow = i * 0x1111;
        c->conns[i].ipid = i * 0x1000;
    }
    c->nfifos = 0;
    memset(c->fifo_index, 0, sizeof(c->fifo_index));
    g_queue_init(&c->units);
    c->chain = chain_get(c);
    virtio_net_rsc_configure(c->chain, c->gro ? NET_RSC_PROFILE_GRO :
                             NET_RSC_PROFILE_RSC_EXT, c->rsc4, c->rsc6);
    virtio_net_rsc_stats_foreach(c->chain, stat_get, &w);
}

/* Called once by libFuzzer before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    Ctx *c = &ctx;
    StatWalk w = { .vals = c->stats0 };

    pat_init();
    c->arena = g_malloc(ARENA_SIZE);
    ASAN_POISON_MEMORY_REGION(c->arena, ARENA_SIZE);
    c->guest = g_malloc(GUEST_SIZE);

    /* The API on no engine at all, as a device without RSC calls it. */
    virtio_net_rsc_flush_all(NULL, NET_RSC_FLUSH_RESET);
    CHECK(virtio_net_rsc_held(NULL) == 0, "units held by no engine");
    virtio_net_rsc_stats_foreach(NULL, stat_get, &w);
    for (; w.i; w.i--) {
        CHECK(c->stats0[w.i - 1] == 0, "a counter of no engine is not 0");
    }
    virtio_net_rsc_delete(NULL);
    /* engines are kept (chain_get()): one made and deleted here */
    virtio_net_rsc_delete(virtio_net_rsc_new(&fake_ops, c, 2, 1, 0));
    return 0;
}

/* The entry point libFuzzer calls for each input. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Reader r = { data, size };
    Ctx *c = &ctx;
    StatWalk w = { 0 };

    setup(c, &r);
    while (r.n && c->budget) {
        run_op(c, &r);
        check_state(c);
    }
    virtio_net_rsc_flush_all(c->chain, NET_RSC_FLUSH_RESET);
    check_flushed(c);
    virtio_net_rsc_stats_foreach(c->chain, check_stat, &w);
    CHECK(w.sums[0] == c->delivered, "bypass counters %" PRIu64
          ", frames delivered alone %" PRIu64, w.sums[0], c->delivered);
    CHECK(w.sums[1] == c->singles + c->coalesced, "flush counters %" PRIu64
          ", units %" PRIu64, w.sums[1], c->singles + c->coalesced);
    ASAN_POISON_MEMORY_REGION(c->arena, c->arena_used);
    return 0;
}

/*
 * Structure-aware mutation.  An input is the header and a list of
 * operations (run_op()); most mutations keep that structure, so that the
 * inputs stay near-valid TCP traffic and reach the merge decisions:
 * - one field of one operation: a segment's connection, queue, sequence
 *   and ACK deltas, TCP flags, window, payload length (the MSS, short,
 *   long), timestamp and other options, padding, IP fields (ECN, DF,
 *   fragments, IPv4 options, IPv6 extension headers, flow label), checksums,
 *   TTL, IP ID rule, vnet header; a burst's length; a clock step; a flush
 *   cause; buffers and offloads; the bytes of a raw frame;
 * - insert an operation (mostly a segment that continues a connection),
 *   delete one, repeat one, swap two;
 * - one field of the header (table size, queues, vnet header, interval,
 *   capacity, buffers, failing writes, rule profile);
 * - or libFuzzer's own byte mutation of the whole input, as a fallback.
 */
#define HDR_BYTES 6
#define SEG_BYTES 13            /* SegParams as read_seg() reads them */
#define MAX_OPS 1024
#define MUT_MAX (1 << 17)

/* Where an operation lies in the input. */
typedef struct Op {
    size_t off;
    size_t len;
} Op;

static uint32_t rnd(uint64_t *st)
{
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    return *st >> 33;
}

static unsigned below(uint64_t *st, unsigned n)
{
    return n ? rnd(st) % n : 0;
}

/* Bytes of the operation at @p, @n bytes left, as run_op() reads it. */
static size_t op_size(const uint8_t *p, size_t n)
{
    size_t len;

    switch (p[0] & 7) {
    case 0:
    case 1:
        len = 1 + SEG_BYTES;
        break;
    case 2:
        len = 5;
        break;
    case 3:
        len = 1 + SEG_BYTES + 5;
        break;
    case 4:
        len = n < 4 ? n : 4 + MIN(lduw_le_p(p + 2), n - 4);
        break;
    case 5:
        len = 3;
        break;
    default:
        len = 2;
        break;
    }
    return MIN(len, n);
}

static unsigned split_ops(const uint8_t *data, size_t size, Op *ops)
{
    size_t off = HDR_BYTES;
    unsigned n = 0;

    while (off < size && n < MAX_OPS) {
        ops[n].off = off;
        ops[n].len = op_size(data + off, size - off);
        off += ops[n].len;
        n++;
    }
    return n;
}

/* A payload length field: the MSS, a short or long payload, none. */
static uint16_t pick_len(uint64_t *st)
{
    static const uint16_t lens[] = {
        0, 0, 0, 1 + 1448, 1 + 1447, 1 + 1, 1 + 0, 1 + 100, 1 + 2047,
    };
    unsigned i = below(st, ARRAY_SIZE(lens) + 2);

    if (i < ARRAY_SIZE(lens)) {
        return lens[i];
    }
    if (i == ARRAY_SIZE(lens)) {
        return 1 + below(st, 2048);
    }
    return 0xf000 | below(st, 0x1000);
}

static int8_t pick_delta(uint64_t *st)
{
    static const int8_t d[] = { 0, 0, 0, 1, -1, 2, -2, 127, -128 };
    unsigned i = below(st, ARRAY_SIZE(d) + 1);

    return i < ARRAY_SIZE(d) ? d[i] : (int8_t)rnd(st);
}

/* Mutate one field of the segment parameters @f (read_seg() order). */
static void mutate_seg(uint8_t *f, uint64_t *st)
{
    switch (below(st, 15)) {
    case 0:     /* another connection */
        f[0] = (f[0] & 0x30) | below(st, NCONNS);
        break;
    case 1:     /* timestamps on/off, the other queue */
        f[0] ^= 0x10 << below(st, 2);
        break;
    case 2:
        f[1] = pick_delta(st);
        break;
    case 3:
        f[2] = pick_delta(st);
        break;
    case 4:     /* one TCP flag (ACK is inverted) */
        f[3] ^= 1 << below(st, 8);
        break;
    case 5:
        f[4] = pick_delta(st);
        break;
    case 6:
        stw_le_p(f + 5, pick_len(st));
        break;
    case 7:     /* TSval step, option layout, other options */
        f[7] ^= 1 << below(st, 8);
        break;
    case 8:     /* padding after the datagram */
        f[8] = below(st, 3) ? 0 : below(st, 2) ? 1 + below(st, 8) : rnd(st);
        break;
    case 9:     /* ECN, DF, MF, offset, IPv4 options, bad IP csum, ID/flow */
        f[9] ^= 1 << below(st, 8);
        break;
    case 10:    /* IPv6 extension header */
        f[9] = (f[9] & ~0x38) | below(st, 8) << 3;
        break;
    case 11:    /* bad TCP checksum, reserved bit, fixed IP ID, TTL */
        if (below(st, 2)) {
            f[10] ^= below(st, 2) ? 0x80 : 1 << below(st, 2);
        } else {
            f[10] = (f[10] & 0x83) | below(st, 32) << 2;
        }
        break;
    case 12:    /* vnet header flags and GSO type */
        f[11] ^= 1 << below(st, 5);
        break;
    case 13:
        f[12] = rnd(st);
        break;
    default:    /* a clean continuation of its connection */
        memset(f + 1, 0, 4);
        if (below(st, 4) == 0) {
            f[3] = TCP_FLAG_PSH;
        }
        f[8] = 0;
        f[9] &= 0x87;
        f[10] &= 0xfc;
        break;
    }
}

/* Mutate one field of the operation @q of @len bytes. */
static void mutate_op(uint8_t *q, size_t len, uint64_t *st)
{
    switch (q[0] & 7) {
    case 0:
    case 1:
        if (len == 1 + SEG_BYTES) {
            mutate_seg(q + 1, st);
        }
        break;
    case 2:     /* burst: connection, count, length */
        if (len == 5) {
            switch (below(st, 3)) {
            case 0:
                q[1] = (q[1] & 0x30) | below(st, NCONNS);
                break;
            case 1:
                q[2] = rnd(st);
                break;
            default:
                stw_le_p(q + 3, pick_len(st));
                break;
            }
        }
        break;
    case 3:
        if (len == 1 + SEG_BYTES + 5) {
            if (below(st, 2)) {
                mutate_seg(q + 1, st);
            } else {
                /* where to corrupt, with what, where to cut */
                q[1 + SEG_BYTES + below(st, 5)] = rnd(st);
            }
        }
        break;
    case 4:     /* the raw frame's bytes */
        if (len > 4) {
            LLVMFuzzerMutate(q + 4, len - 4, len - 4);
        }
        break;
    case 5:     /* a short step, about an interval, or a long one */
        if (len == 3) {
            static const uint16_t steps[] = { 1, 16, 4688, 15625, 0xffff };

            stw_le_p(q + 1, below(st, 2) ? steps[below(st, 5)] : rnd(st));
        }
        break;
    case 6:
        if (len == 2) {
            q[1] = rnd(st);
        }
        break;
    default:    /* buffers (none, a few, unlimited) or offloads */
        if (len == 2) {
            static const uint8_t misc[] = { 0x80, 0x81, 0x82, 0xff, 0, 1, 2,
                                            3 };

            q[1] = misc[below(st, ARRAY_SIZE(misc))];
        }
        break;
    }
}

/*
 * Write a new operation to @q (room for 64 bytes); returns its length.
 * Mostly a segment that continues a connection of the input @data.
 */
static size_t gen_op(uint8_t *q, const uint8_t *data, const Op *ops,
                     unsigned nops, uint64_t *st)
{
    unsigned i, k = below(st, 20);

    if (k < 10) {
        /* copy a segment of the input, cleaned up to continue its flow */
        for (i = 0; i < 4 && nops; i++) {
            const Op *o = &ops[below(st, nops)];

            if ((data[o->off] & 6) == 0 && o->len == 1 + SEG_BYTES) {
                memcpy(q, data + o->off, o->len);
                memset(q + 2, 0, 4);
                q[9] = 0;
                if (below(st, 3) == 0) {
                    mutate_seg(q + 1, st);
                }
                return o->len;
            }
        }
        memset(q, 0, 1 + SEG_BYTES);
        q[1] = below(st, NCONNS);
        mutate_seg(q + 1, st);
        return 1 + SEG_BYTES;
    }
    switch (k) {
    case 10:
    case 11:
        q[0] = 2;
        q[1] = below(st, NCONNS);
        q[2] = below(st, 64);
        stw_le_p(q + 3, pick_len(st));
        return 5;
    case 12:
    case 13:
        q[0] = 5;
        mutate_op(q, 3, st);
        return 3;
    case 14:
        q[0] = 6;
        q[1] = rnd(st);
        return 2;
    case 15:
    case 16:
        q[0] = 7;
        mutate_op(q, 2, st);
        return 2;
    case 17:
        memset(q, 0, 1 + SEG_BYTES + 5);
        q[0] = 3;
        q[1] = below(st, NCONNS);
        for (i = 0; i < 5; i++) {
            q[1 + SEG_BYTES + i] = rnd(st);
        }
        return 1 + SEG_BYTES + 5;
    case 18: {
        /* a raw frame: Ethernet header, IPv4 or IPv6, random bytes */
        unsigned n = 14 + below(st, 46);

        q[0] = 4;
        q[1] = below(st, 2);
        stw_le_p(q + 2, n);
        for (i = 0; i < n; i++) {
            q[4 + i] = rnd(st);
        }
        stw_be_p(q + 4 + 12, below(st, 2) ? ETH_P_IP : ETH_P_IPV6);
        q[4 + 14] = below(st, 2) ? 0x45 : 0x60;
        return 4 + n;
    }
    default:    /* a segment with SYN, FIN, RST or URG */
        memset(q, 0, 1 + SEG_BYTES);
        q[1] = below(st, NCONNS);
        q[4] = 1 << below(st, 6);
        return 1 + SEG_BYTES;
    }
}

/* Mutate one field of the header @h (HDR_BYTES bytes). */
static void mutate_header(uint8_t *h, uint64_t *st)
{
    static const uint8_t intervals[] = { 0, 1, 10, 100, 255 };

    switch (below(st, 6)) {
    case 0:
        h[0] ^= 1 << below(st, 8);
        break;
    case 1:
        h[1] = below(st, 2) ? intervals[below(st, 5)] : rnd(st);
        break;
    case 2:
        stw_le_p(h + 2, below(st, 2) ? 0 : below(st, 2) ? below(st, 4000) :
                 rnd(st));
        break;
    case 3:
        h[4] = below(st, 2) ? below(st, 4) : rnd(st);
        break;
    case 4:     /* the rule profile */
        h[5] ^= 0x80;
        break;
    default:
        h[5] = (h[5] & 0x80) | (below(st, 2) ? 0 : below(st, 16));
        break;
    }
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed)
{
    static Op ops[MAX_OPS];
    static uint8_t out[MUT_MAX];
    uint64_t st = seed * 0x9e3779b97f4a7c15ull + 1;
    unsigned nops, k, i, j, n, x, src;
    size_t len = 0;

    if (size < HDR_BYTES) {
        /* a default header and a first segment */
        memset(out, 0, HDR_BYTES);
        len = HDR_BYTES;
        len += gen_op(out + len, data, NULL, 0, &st);
        if (len > max_size) {
            return LLVMFuzzerMutate(data, size, max_size);
        }
        memcpy(data, out, len);
        return len;
    }
    nops = split_ops(data, size, ops);
    k = below(&st, 100);
    if (k < 40 && nops) {
        const Op *o = &ops[below(&st, nops)];

        mutate_op(data + o->off, o->len, &st);
        return size;
    }
    if (k < 47) {
        mutate_header(data, &st);
        return size;
    }
    if (k >= 85 || size > MUT_MAX - 1024) {
        return LLVMFuzzerMutate(data, size, max_size);
    }

    /* rebuild the operation list with one change at operation @i */
    memcpy(out, data, HDR_BYTES);
    len = HDR_BYTES;
    i = below(&st, nops + 1);
    j = below(&st, nops);
    for (x = 0; x <= nops; x++) {
        if (x == i && k < 62) {
            /* insert new operations */
            for (n = 1 + below(&st, 4); n; n--) {
                len += gen_op(out + len, data, ops, nops, &st);
            }
        } else if (x == i && k < 75 && nops && ops[j].len <= 64) {
            /* repeat operation @j, as a run */
            for (n = 1 + below(&st, 8); n; n--) {
                memcpy(out + len, data + ops[j].off, ops[j].len);
                len += ops[j].len;
            }
        }
        if (x == nops) {
            break;
        }
        src = x;
        if (k >= 75 && k < 80 && i < nops) {
            /* swap operations @i and @j */
            src = x == i ? j : x == j ? i : x;
        } else if (k >= 80 && x == i) {
            continue;   /* delete operation @i */
        }
        memcpy(out + len, data + ops[src].off, ops[src].len);
        len += ops[src].len;
    }
    if (len > max_size) {
        return LLVMFuzzerMutate(data, size, max_size);
    }
    memcpy(data, out, len);
    return len;
}

size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1,
                                 const uint8_t *data2, size_t size2,
                                 uint8_t *out, size_t max_out_size,
                                 unsigned int seed)
{
    static Op ops1[MAX_OPS], ops2[MAX_OPS];
    uint64_t st = seed * 0x9e3779b97f4a7c15ull + 7;
    unsigned n1, n2, i, j, x;
    size_t len;

    if (size1 < HDR_BYTES || size2 < HDR_BYTES ||
        max_out_size < HDR_BYTES) {
        return 0;
    }
    /* the header of the first, its first operations, the second's last */
    n1 = split_ops(data1, size1, ops1);
    n2 = split_ops(data2, size2, ops2);
    i = below(&st, n1 + 1);
    j = below(&st, n2 + 1);
    memcpy(out, data1, HDR_BYTES);
    len = HDR_BYTES;
    for (x = 0; x < i && len + ops1[x].len <= max_out_size; x++) {
        memcpy(out + len, data1 + ops1[x].off, ops1[x].len);
        len += ops1[x].len;
    }
    for (x = j; x < n2 && len + ops2[x].len <= max_out_size; x++) {
        memcpy(out + len, data2 + ops2[x].off, ops2[x].len);
        len += ops2[x].len;
    }
    return len;
}
