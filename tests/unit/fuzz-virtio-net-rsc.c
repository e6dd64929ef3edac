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
 *   still carry their pattern (byte = pattern(connection, sequence));
 * - coalesced headers are consistent: IP length fields, IPv4 header
 *   checksum, TCP pseudo-header checksum, virtio-net header fields;
 * - the engine holds nothing after a flush of everything, never more units
 *   than its flow table, and no unit past its deadline after expiry;
 * - its counters agree with what the guest saw;
 * and the sanitizers check memory accesses and undefined behaviour.
 *
 * Input format (bytes past the end read as 0; 16-bit values little-endian):
 *   header   flags (bits 0-2 flow table size index, 3 two queues, 4 12-byte
 *            vnet header, 5 buffers never hold units, 6 RSC4 off, 7 RSC6
 *            off), interval in us (255 also selects the largest table),
 *            unit capacity (16 bits, 0: unlimited), guest buffers (0:
 *            unlimited, else n - 1), every n-th unit_write fails (0: none)
 *   then operations, the low 3 bits of the first byte selecting:
 *   0, 1     segment: connection (bits 0-3, 4 toggles timestamps, 5 other
 *            queue), seq delta, ack delta, TCP flags (ACK inverted), window
 *            delta, payload length (16 bits: 0 the MSS, below 0xf000 up to
 *            2047 bytes, above in 16-byte steps), timestamp and options,
 *            padding, IP fields, checksum/TTL, vnet flags and GSO type,
 *            GSO size
 *   2        burst: connection, count, payload length
 *   3        segment as in 0, then corrupted: offset (16), XOR, cut (16)
 *   4        raw frame: queue, length (16), bytes
 *   5        advance the clock by n * 64 ns (16 bits) and expire
 *   6        flush all, or one queue (bit 7), with a cause
 *   7        refill guest buffers (bit 7) or switch RSC4/RSC6 (bits 0-1)
 * build_seg() and run_op() are the reference.
 *
 * Build with clang -fsanitize=fuzzer,address,undefined, linking
 * hw/net/virtio-net-rsc.c, net/checksum.c, libqemuutil.a and glib.
 * The harness computes checksums with its own code rather than with
 * net/checksum.c, so that it does not share a bug with the engine.
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "net/eth.h"
#include "standard-headers/linux/virtio_net.h"
#include "hw/virtio/virtio-net-rsc.h"

#define VHDR_LEN 12             /* backend vnet header, when there is one */
#define NCONNS 16               /* generated connections */
#define MSS 1448                /* default payload of a generated segment */
#define FRAME_MAX 70000         /* largest frame the generator builds */
#define BUDGET (8 * 1024 * 1024) /* frame bytes offered per input */
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
    size_t budget;
    GHashTable *fifos;      /* Key -> Fifo */
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
} Ctx;

static Ctx ctx;

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

/* Payload byte at sequence number @seq of generated connection @conn. */
static uint8_t pattern(unsigned conn, uint32_t seq)
{
    return (seq * 131 + (seq >> 9) + conn * 29) & 0xff;
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
                  bool rsc6, Frame *f)
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
        f->iph_ok = fold(sum16(ip, 20)) == 0xffff;
        l4len = tot - 20;
    } else if (et == ETH_P_IPV6) {
        if (!rsc6 || l3len < IPV6_HLEN || (ip[0] >> 4) != 6 ||
            lduw_be_p(ip + 4) > l3len - IPV6_HLEN) {
            return;
        }
        f->v6 = true;
        memcpy(f->addrs, ip + 8, 32);
        if (ip[6] != IP_PROTO_TCP) {
            if (ipv6_ext_hdr(ip[6])) {
                f->cls = CLS_ADDRS;
            }
            return;
        }
        f->iphl = IPV6_HLEN;
        f->ttl = ip[7];
        f->ipclass = ldl_be_p(ip) & 0x0fffffff;
        f->iph_ok = true;
        l4len = lduw_be_p(ip + 4);
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
    f->csum_ok = (f->vflags & (VIRTIO_NET_HDR_F_DATA_VALID |
                               VIRTIO_NET_HDR_F_NEEDS_CSUM)) ||
                 fold(pseudo_sum(f->addrs, f->v6, l4len) +
                      sum16(tcp, l4len)) == 0xffff;
}

static const uint8_t *payload_of(const Frame *f)
{
    return f->l2 + ETH_HLEN + f->iphl + f->tcphl;
}

/* May this segment be part of a coalesced packet at all? */
static bool mergeable(const Frame *f)
{
    return f->cls == CLS_CONN && f->gso_type == VIRTIO_NET_HDR_GSO_NONE &&
           f->iph_ok && (f->flags & TCP_FLAG_ACK) &&
           !(f->flags & ~MERGE_FLAGS) && !f->tcp_res && f->opts_ok &&
           f->csum_ok;
}

static guint key_hash(gconstpointer p)
{
    const uint8_t *b = p;
    guint h = 2166136261u;
    size_t i;

    for (i = 0; i < sizeof(Key); i++) {
        h = (h ^ b[i]) * 16777619u;
    }
    return h;
}

static gboolean key_equal(gconstpointer a, gconstpointer b)
{
    return !memcmp(a, b, sizeof(Key));
}

static Fifo *fifo_get(Ctx *c, int kind, unsigned queue, const Frame *f)
{
    Fifo *fifo;
    Key k;

    memset(&k, 0, sizeof(k));
    k.kind = kind;
    k.queue = queue;
    k.v6 = f->v6;
    memcpy(k.addrs, f->addrs, f->v6 ? 32 : 8);
    if (kind == CLS_CONN) {
        k.ports = f->ports;
    }
    fifo = g_hash_table_lookup(c->fifos, &k);
    if (!fifo) {
        fifo = g_new0(Fifo, 1);
        fifo->key = k;
        g_queue_init(&fifo->q);
        g_hash_table_insert(c->fifos, &fifo->key, fifo);
    }
    return fifo;
}

static Entry *entry_new(Ctx *c, uint8_t *buf, size_t size, unsigned queue,
                        int conn)
{
    Entry *e = g_new0(Entry, 1);

    e->buf = buf;
    e->size = size;
    e->queue = queue;
    e->conn = conn;
    parse(buf, size, c->vhl, c->rsc4, c->rsc6, &e->f);
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

static void entry_free(Entry *e)
{
    g_free(e->buf);
    g_free(e);
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

static void check_inflight(Ctx *c, const uint8_t *buf, size_t size,
                           const char *what)
{
    CHECK(c->inflight, "%s outside virtio_net_rsc_receive", what);
    CHECK(buf == c->inflight->buf && size == c->inflight->size,
          "%s with a frame other than the one being received", what);
    CHECK(!c->inflight->consumed, "%s of a frame already delivered", what);
}

static NetRscBegin fake_begin(void *opaque, unsigned queue,
                              const uint8_t *buf, size_t size, size_t keep,
                              const NetRscRxInfo *info, void **unit)
{
    Ctx *c = opaque;
    Entry *e = c->inflight;
    Unit *u;

    check_inflight(c, buf, size, "unit_begin");
    CHECK(keep > 0 && keep <= size - c->vhl,
          "unit_begin keeps %zu bytes of a %zu-byte frame", keep,
          size - c->vhl);
    CHECK(queue == e->queue, "unit_begin on queue %u, frame on %u", queue,
          e->queue);
    CHECK(mergeable(&e->f) && e->f.payload_len > 0,
          "unit begun with a frame that is not a mergeable data segment");
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
    u = g_new0(Unit, 1);
    u->len = size - c->vhl;
    u->alloc = u->len;
    u->buf = g_memdup2(buf + c->vhl, u->len);
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

        u->buf = g_realloc(u->buf, alloc);
        memset(u->buf + u->alloc, 0xa5, alloc - u->alloc);
        u->alloc = alloc;
    }
    memcpy(u->buf + offset, d, len);
    u->len = MAX(u->len, offset + len);
    return true;
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
    uint8_t want[ETH_HLEN + IPV6_HLEN + 60];
    GList *l, *done = NULL;
    const uint8_t *ip = out + ETH_HLEN, *tcp = ip + f0->iphl;

    CHECK(hdr->flags == (VIRTIO_NET_HDR_F_NEEDS_CSUM |
                         VIRTIO_NET_HDR_F_RSC_INFO),
          "coalesced packet with vnet flags 0x%x", hdr->flags);
    CHECK(hdr->gso_type == (f0->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 :
                                     VIRTIO_NET_HDR_GSO_TCPV4),
          "coalesced packet with gso_type %u", hdr->gso_type);
    CHECK(hdr->hdr_len == hl, "hdr_len %u, headers are %u bytes",
          hdr->hdr_len, hl);
    CHECK(hdr->gso_size == mss, "gso_size %u, first segment carries %u",
          hdr->gso_size, mss);
    CHECK(hdr->csum_start >= 2, "coalesced packet of %u segments",
          hdr->csum_start);
    CHECK(hdr->csum_offset == 0, "duplicate ACK count %u", hdr->csum_offset);
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

        if (n == hdr->csum_start && (f->payload_len || e == c->inflight)) {
            break;
        }
        CHECK(mergeable(f), "merged a segment that is not mergeable "
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
            if (e->conn >= 0) {
                for (i = 0; i < f->payload_len; i++) {
                    CHECK(out[off + i] == pattern(e->conn, f->seq + i),
                          "conn %d byte at seq %u wrong", e->conn,
                          f->seq + i);
                }
            }
            short_seen = f->payload_len < mss;
            off += f->payload_len;
            next_seq += f->payload_len;
            psh |= f->flags & TCP_FLAG_PSH;
            n++;
        } else {
            /* a pure ACK the unit absorbed as a window update */
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
        done = g_list_prepend(done, l->data);
    }
    CHECK(n == hdr->csum_start, "packet claims %u segments, holds %u",
          hdr->csum_start, n);
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

    c->merged += n - 1;
    for (l = done; l; l = l->next) {
        consume(c, l->data);
    }
    g_list_free(done);
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
    g_free(u->buf);
    g_free(u);
}

static ssize_t fake_deliver(void *opaque, unsigned queue, const uint8_t *buf,
                            size_t size, const NetRscVnetHdr *hdr,
                            const NetRscRxInfo *info)
{
    Ctx *c = opaque;
    Entry *e = c->inflight;
    const Frame *f;

    check_inflight(c, buf, size, "deliver");
    f = &e->f;
    CHECK(queue == e->queue, "deliver on queue %u, frame on %u", queue,
          e->queue);
    if (f->cls == CLS_CONN && f->gso_type != VIRTIO_NET_HDR_GSO_NONE &&
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
                    int conn)
{
    Entry *e = entry_new(c, buf, size, queue, conn);
    ssize_t ret;
    GList *l;

    c->inflight = e;
    ret = virtio_net_rsc_receive(c->chain, queue, buf, size, c->vhl, NULL);
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
    unsigned cn = p->conn % NCONNS;
    Conn *k = &c->conns[cn];
    bool v6 = cn & 8;
    bool ts = !!(cn & 2) ^ !!(p->conn & 0x10);
    uint8_t *buf = c->scratch, *l2 = buf + c->vhl, *ip = l2 + ETH_HLEN;
    uint8_t *tcp, opts[40];
    unsigned ext = 0, olen = 0, tcphl, iphl = v6 ? IPV6_HLEN : 20, i;
    uint8_t flags, nh = IP_PROTO_TCP;
    uint32_t seq = k->seq + p->seq_d, len, tcplen, maxlen;
    size_t size;

    *queue = (cn + !!(p->conn & 0x20)) % c->nqueues;
    k->ack += p->ack_d;
    k->win += p->win_d * 64;
    k->tsecr++;
    k->ipid += p->ip & 0x80 ? 1000 : 1;
    if (v6 && (p->ip & 0x80)) {
        k->flow ^= 1;
    }
    if (ts) {
        k->tsval += p->ts & 0x10 ? -(p->ts & 0xf) : (p->ts & 0xf);
        if (p->ts & 0x20) {
            memcpy(opts, "\x08\x0a", 2);
            stl_be_p(opts + 2, k->tsval);
            stl_be_p(opts + 6, k->tsecr);
            memcpy(opts + 10, "\x00\x00", 2);
        } else {
            memcpy(opts, "\x01\x01\x08\x0a", 4);
            stl_be_p(opts + 4, k->tsval);
            stl_be_p(opts + 8, k->tsecr);
        }
        olen = 12;
    }
    if (p->ts & 0x40) {
        memcpy(opts + olen, "\x02\x04\x05\xb4", 4);  /* MSS */
        olen += 4;
    }
    if (p->ts & 0x80) {
        memcpy(opts + olen, "\x03\x00\x01\x01", 4);  /* length 0 */
        olen += 4;
    }
    tcphl = TCP_HLEN + olen;
    if (v6 && (p->ip & 0x38)) {
        ext = 8;
    } else if (!v6 && (p->ip & 0x20)) {
        iphl += 4;
    }

    /* 0: the MSS; mostly small payloads, large ones from 0xf000 on */
    maxlen = 65535 - tcphl - (v6 ? ext : iphl);
    if (!p->len) {
        len = MSS;
    } else if (p->len < 0xf000) {
        len = (p->len - 1) & 0x7ff;
    } else {
        len = MIN((p->len & 0xfff) * 16u, maxlen);
    }
    tcplen = tcphl + len;
    size = c->vhl + ETH_HLEN + (v6 ? IPV6_HLEN + ext : iphl) + tcplen +
           p->pad;
    if (size > c->budget) {
        c->budget = 0;
        return 0;
    }
    c->budget -= size;

    memset(buf, 0, size);
    memcpy(l2, "\x52\x54\x00\x12\x34\x56\x52\x54\x00\x65\x43\x21", 12);
    if (v6) {
        stw_be_p(l2 + 12, ETH_P_IPV6);
        stl_be_p(ip, 0x60000000 | ((p->ip & 3) << 20) | k->flow);
        stw_be_p(ip + 4, ext + tcplen);
        ip[7] = 64 - (p->misc >> 2);
        stl_be_p(ip + 8, 0xfd000000);
        ip[23] = cn & 4 ? 3 : 1;
        stl_be_p(ip + 24, 0xfd000000);
        ip[39] = 2;
        if (ext) {
            nh = p->ip & 0x20 ? 0 : 44;
            ip[IPV6_HLEN] = IP_PROTO_TCP;
            if (nh == 44) {
                stw_be_p(ip + IPV6_HLEN + 2, p->ip & 0x10 ? 8 : 1);
            } else {
                memcpy(ip + IPV6_HLEN + 2, "\x01\x04", 2);    /* PadN */
            }
        }
        ip[6] = nh;
        tcp = ip + IPV6_HLEN + ext;
    } else {
        uint16_t frag = IP_DF ^ (p->ip & 4 ? IP_DF : 0);

        frag |= (p->ip & 8 ? IP_MF : 0) | (p->ip & 0x10 ? 1 : 0);
        stw_be_p(l2 + 12, ETH_P_IP);
        ip[0] = 0x40 | (iphl / 4);
        ip[1] = p->ip & 3;
        stw_be_p(ip + 2, iphl + tcplen);
        stw_be_p(ip + 4, k->ipid);
        stw_be_p(ip + 6, frag);
        ip[8] = 64 - (p->misc >> 2);
        ip[9] = IP_PROTO_TCP;
        stl_be_p(ip + 12, cn & 4 ? 0x0a000103 : 0x0a000001);
        stl_be_p(ip + 16, 0x0a000002);
        if (iphl > 20) {
            memcpy(ip + 20, "\x01\x01\x01\x00", 4);
        }
        stw_be_p(ip + 10, ~fold(sum16(ip, iphl)) ^ (p->ip & 0x40 ? 1 : 0));
        tcp = ip + iphl;
    }
    /* TCP flags as given, but ACK unless asked to leave it out */
    flags = p->flags ^ TCP_FLAG_ACK;
    stw_be_p(tcp, 1000 + cn);
    stw_be_p(tcp + 2, 80);
    stl_be_p(tcp + 4, seq);
    stl_be_p(tcp + 8, k->ack);
    tcp[12] = (tcphl / 4) << 4 | (p->misc & 2 ? 1 : 0);
    tcp[13] = flags;
    stw_be_p(tcp + 14, k->win);
    memcpy(tcp + TCP_HLEN, opts, olen);
    for (i = 0; i < len; i++) {
        tcp[tcphl + i] = pattern(cn, seq + i);
    }
    stw_be_p(tcp + 16, ~fold(pseudo_sum(ip + (v6 ? 8 : 12), v6, tcplen) +
                             sum16(tcp, tcplen)) ^ (p->misc & 1));
    for (i = 0; i < p->pad; i++) {
        tcp[tcplen + i] = 0xe0 + i;
    }
    if (c->vhl) {
        buf[0] = p->vnet & 3;
        buf[1] = gso_choice[(p->vnet >> 2) & 7];
        stw_le_p(buf + 2, tcp + tcphl - l2);
        stw_le_p(buf + 4, p->gso * 16);
        if (buf[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
            stw_le_p(buf + 6, tcp - l2);
            stw_le_p(buf + 8, 16);
        }
    }
    k->seq = seq + len + !!(flags & TCP_FLAG_SYN) + !!(flags & TCP_FLAG_FIN);
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
    if (!receive(c, queue, g_memdup2(c->scratch, size), size,
                 mutate ? -1 : (int)cn)) {
        /* the backend keeps it and sends it again later */
        c->conns[cn] = saved;
    }
}

static void op_raw(Ctx *c, Reader *r)
{
    unsigned queue = rd8(r) % c->nqueues;
    size_t size = MIN(rd16(r), r->n);

    if (size > c->budget) {
        c->budget = 0;
        return;
    }
    c->budget -= size;
    if (size) {
        /* a backend never offers an empty frame */
        receive(c, queue, g_memdup2(r->p, size), size, -1);
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
        virtio_net_rsc_configure(c->chain, NET_RSC_PROFILE_RSC_EXT, c->rsc4,
                                 c->rsc6);
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

/* The engine's counters against what the guest saw. */
static void check_stat(const char *name, uint64_t value, void *opaque)
{
    uint64_t *sums = opaque;
    const Ctx *c = &ctx;

    if (g_str_has_prefix(name, "bypass-")) {
        sums[0] += value;
    } else if (g_str_has_prefix(name, "flush-")) {
        sums[1] += value;
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

static void setup(Ctx *c, Reader *r)
{
    uint8_t h0 = rd8(r), h1 = rd8(r), h4, h5;
    uint16_t cap = rd16(r);
    unsigned i;

    h4 = rd8(r);
    h5 = rd8(r);
    memset(c, 0, offsetof(Ctx, scratch));
    memset(&c->accepted, 0, sizeof(*c) - offsetof(Ctx, accepted));
    /* the largest table is slow to set up: only with the longest interval */
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
    c->wfail = h5;
    c->now = 1000000;
    c->budget = BUDGET;
    for (i = 0; i < NCONNS; i++) {
        c->conns[i].seq = 0xfffff000u + i * 1000003u;
        c->conns[i].ack = 1;
        c->conns[i].tsval = 0xfffffff0u;
        c->conns[i].win = 1000;
        c->conns[i].flow = i * 0x1111;
    }
    c->fifos = g_hash_table_new_full(key_hash, key_equal, NULL, g_free);
    g_queue_init(&c->units);
    c->chain = virtio_net_rsc_new(&fake_ops, c, c->nqueues, c->max_flows,
                                  c->interval);
    virtio_net_rsc_configure(c->chain, NET_RSC_PROFILE_RSC_EXT, c->rsc4,
                             c->rsc6);
}

/* The entry point libFuzzer calls; declared by libFuzzer itself. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Reader r = { data, size };
    Ctx *c = &ctx;
    uint64_t sums[2] = { 0, 0 };

    setup(c, &r);
    while (r.n && c->budget) {
        run_op(c, &r);
        check_state(c);
    }
    virtio_net_rsc_flush_all(c->chain, NET_RSC_FLUSH_RESET);
    check_flushed(c);
    virtio_net_rsc_stats_foreach(c->chain, check_stat, sums);
    CHECK(sums[0] == c->delivered, "bypass counters %" PRIu64
          ", frames delivered alone %" PRIu64, sums[0], c->delivered);
    CHECK(sums[1] == c->singles + c->coalesced, "flush counters %" PRIu64
          ", units %" PRIu64, sums[1], c->singles + c->coalesced);
    virtio_net_rsc_delete(c->chain);
    g_hash_table_destroy(c->fifos);
    return 0;
}
