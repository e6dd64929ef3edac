/*
 * virtio-net receive segment coalescing (RSC) engine
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Each receive queue has a fixed-size flow table.  A flow entry describes
 * one unit under construction: the first segment's Ethernet/IP/TCP headers
 * and what later segments changed.  The payload itself lives only in the
 * guest's receive buffers (NetRscOps), so host memory per flow is one
 * RscFlow and each payload byte is copied once.
 *
 * A frame goes through three steps: rsc_parse() extracts the headers once
 * and classifies the frame; rsc_match() decides whether a data segment
 * joins the unit of its connection; rsc_finalise() patches the headers
 * once, when the unit is flushed.
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/host-utils.h"
#include "qemu/memalign.h"
#include "qemu/units.h"
#include "net/checksum.h"
#include "net/eth.h"
#include "standard-headers/linux/virtio_net.h"
#include "hw/virtio/virtio-net-rsc.h"
#include "trace.h"

/* Ethernet + IPv6 + TCP with the timestamp option: the largest we merge. */
#define RSC_MAX_L234 (ETH_HLEN + 40 + 32)
/* RSC_MAX_L234 rounded up to 64-bit words, for rsc_fast() */
#define RSC_L234_WORDS DIV_ROUND_UP(RSC_MAX_L234, 8)

#define RSC_NIL UINT16_MAX

#define RSC_TCP_FLAGS_MERGE (TCP_FLAG_ACK | TCP_FLAG_PSH | TCP_FLAG_ECE | \
                             TCP_FLAG_CWR)
#define RSC_TCP_FLAG_ECN (TCP_FLAG_ECE | TCP_FLAG_CWR)

#define RSC_TCPOPT_EOL 0
#define RSC_TCPOPT_NOP 1
#define RSC_TCPOPT_TS 8
#define RSC_TCPOLEN_TS 10
/* NOP, NOP, then the kind and length of a timestamp option */
#define RSC_TCPOPT_TS_ALIGNED 0x0101080a

/* Counters that are neither a bypass reason nor a flush cause. */
enum {
    RSC_STAT_SEGMENTS,
    RSC_STAT_MERGED,
    RSC_STAT_UNITS,
    RSC_STAT_UNCOALESCED,
    RSC_STAT_WINDOW_UPDATES,
    RSC_STAT_NOT_ACCEPTED,
    RSC_STAT__MAX,
};

static const char *const rsc_stat_names[RSC_STAT__MAX] = {
    [RSC_STAT_SEGMENTS] = "segments-received",
    [RSC_STAT_MERGED] = "segments-merged",
    [RSC_STAT_UNITS] = "units-delivered",
    [RSC_STAT_UNCOALESCED] = "frames-uncoalesced",
    [RSC_STAT_WINDOW_UPDATES] = "window-updates",
    [RSC_STAT_NOT_ACCEPTED] = "not-accepted",
};

static const char *const rsc_bypass_names[NET_RSC_BYPASS__MAX] = {
    [NET_RSC_BYPASS_NOT_TCPIP] = "bypass-not-tcpip",
    [NET_RSC_BYPASS_DISABLED] = "bypass-disabled",
    [NET_RSC_BYPASS_MALFORMED] = "bypass-malformed",
    [NET_RSC_BYPASS_FRAGMENT] = "bypass-fragment",
    [NET_RSC_BYPASS_IP_OPTIONS] = "bypass-ip-options",
    [NET_RSC_BYPASS_CHECKSUM] = "bypass-checksum",
    [NET_RSC_BYPASS_TCP_FLAGS] = "bypass-tcp-flags",
    [NET_RSC_BYPASS_TCP_OPTIONS] = "bypass-tcp-options",
    [NET_RSC_BYPASS_PURE_ACK] = "bypass-pure-ack",
    [NET_RSC_BYPASS_DUP_ACK] = "bypass-dup-ack",
    [NET_RSC_BYPASS_BACKEND_GSO] = "bypass-backend-gso",
    [NET_RSC_BYPASS_NO_UNIT] = "bypass-no-unit",
};

static const char *const rsc_flush_names[NET_RSC_FLUSH__MAX] = {
    [NET_RSC_FLUSH_TIMER] = "flush-timer",
    [NET_RSC_FLUSH_BURST] = "flush-burst-end",
    [NET_RSC_FLUSH_FULL] = "flush-full",
    [NET_RSC_FLUSH_SHORT] = "flush-short",
    [NET_RSC_FLUSH_EXCEPTION] = "flush-exception",
    [NET_RSC_FLUSH_EVICT] = "flush-evict",
    [NET_RSC_FLUSH_NO_BUFFER] = "flush-no-buffer",
    [NET_RSC_FLUSH_OFFLOADS] = "flush-offloads",
    [NET_RSC_FLUSH_RESET] = "flush-reset",
    [NET_RSC_FLUSH_VM_STOP] = "flush-vm-stop",
    [NET_RSC_FLUSH_LINK_DOWN] = "flush-link-down",
};

/* What rsc_parse() found out about a frame. */
typedef enum RscClass {
    RSC_CLASS_OTHER,        /* of no connection: deliver alone */
    RSC_CLASS_ADDRS,        /* of an address pair only: flush its units */
    RSC_CLASS_CONN,         /* of a connection, not mergeable: flush it */
    RSC_CLASS_DATA,         /* mergeable data segment */
    RSC_CLASS_ACK,          /* mergeable-form segment without payload */
} RscClass;

/* Headers of one frame, extracted once by rsc_parse(). */
typedef struct RscSeg {
    const uint8_t *l2;      /* Ethernet header */
    const uint8_t *addrs;   /* source then destination address */
    const uint8_t *payload; /* TCP payload */
    uint32_t payload_len;   /* TCP payload bytes (padding excluded) */
    uint32_t ports;         /* both ports, as in the header */
    uint32_t hash;          /* of addresses and ports */
    uint32_t seq;
    uint32_t ack;
    uint32_t tsval;
    uint32_t tsecr;
    uint32_t ipclass;       /* IPv4: TOS and DF; IPv6: class and label */
    uint16_t win;
    uint16_t gso_size;      /* from the backend's vnet header */
    uint8_t vnet_flags;     /* from the backend's vnet header */
    uint8_t gso_type;       /* from the backend's vnet header */
    uint8_t v6;             /* 1: IPv6, 0: IPv4 */
    uint8_t iphl;           /* IP header bytes */
    uint8_t tcphl;          /* TCP header bytes */
    uint8_t ts_off;         /* TSval offset in the TCP header, 0: none */
    uint8_t tcp_flags;
    uint8_t ttl;            /* TTL or hop limit */
} RscSeg;

/*
 * One unit under construction; 0xffff-terminated index links.  Its key,
 * addresses and ports, is read from l234 (rsc_flow_addrs(), ..._ports()).
 * Cache-line aligned: a merge reads the first line and the headers after.
 */
#define RSC_FLOW_ALIGN 64

typedef struct QEMU_ALIGNED(RSC_FLOW_ALIGN) RscFlow {
    uint32_t hash;          /* of the key */
    uint32_t next_seq;      /* sequence number the next segment must have */
    uint32_t ack;           /* latest ACK number */
    uint32_t tsval;         /* latest TSval */
    uint32_t tsecr;         /* latest TSecr */
    uint32_t ipclass;       /* must stay equal (see RscSeg) */
    uint32_t payload;       /* payload bytes in the unit */
    uint32_t frame_len;     /* first frame's length, padding included */
    int64_t start_ns;       /* when the first segment arrived */
    void *unit;             /* NetRscOps handle of the guest buffers */
    uint16_t win;           /* latest window */
    uint16_t mss;           /* payload bytes of the first segment */
    uint16_t segs;          /* segments in the unit */
    uint16_t hnext;         /* next entry in the hash bucket or free list */
    uint16_t older;         /* age list, towards the oldest unit */
    uint16_t newer;         /* age list, towards the newest unit */
    uint8_t v6;             /* key: IP version */
    uint8_t l234_len;       /* bytes in l234 */
    uint8_t iphl;           /* IP header bytes */
    uint8_t ts_off;         /* TSval offset in the TCP header, 0: none */
    uint8_t ecn_flags;      /* ECE and CWR of the first segment */
    uint8_t psh;            /* TCP_FLAG_PSH if any segment had it */
    uint8_t ttl;            /* minimum TTL or hop limit */
    uint8_t layout;         /* RSC_LAYOUT_*: which rsc_fast() mask */
    uint8_t l234[RSC_L234_WORDS * 8]; /* the first segment's headers */
} RscFlow;

/* Host memory per connection: one RscFlow. */
QEMU_BUILD_BUG_MSG(sizeof(RscFlow) >= 256, "RscFlow grew to 256 bytes");

/* The key of @f: source then destination address, and both ports. */
static inline const uint8_t *rsc_flow_addrs(const RscFlow *f)
{
    return f->l234 + ETH_HLEN + (f->v6 ? 8 : 12);
}

static inline uint32_t rsc_flow_ports(const RscFlow *f)
{
    return ldl_he_p(f->l234 + ETH_HLEN + f->iphl);
}

/*
 * Header layouts that rsc_fast() knows: IPv4 or IPv6 without options or
 * extension headers, TCP without options or with NOP, NOP, timestamp.
 */
enum {
    RSC_LAYOUT_V4,
    RSC_LAYOUT_V4_TS,
    RSC_LAYOUT_V6,
    RSC_LAYOUT_V6_TS,
    RSC_LAYOUT__MAX,
    RSC_LAYOUT_NONE = RSC_LAYOUT__MAX,
};

/* The flow table of one receive queue. */
typedef struct RscQueue {
    RscFlow *flows;         /* max_flows entries */
    uint16_t *buckets;      /* hash heads, bucket_mask + 1 entries */
    uint16_t free;          /* first unused entry */
    uint16_t oldest;        /* unit that falls due first */
    uint16_t newest;        /* unit started last */
    uint16_t held;          /* units under construction */
    uint16_t prev;          /* unit that took the last data segment */
    uint16_t last;          /* the same, if it took two in a row: rsc_fast() */
} RscQueue;

struct NetRscChain {
    const NetRscOps *ops;   /* access to the guest's buffers */
    void *opaque;           /* for @ops */
    uint64_t interval_ns;   /* rsc_interval */
    unsigned nqueues;       /* entries in @queues */
    unsigned max_flows;     /* flow table entries per queue */
    uint32_t bucket_mask;   /* hash buckets per queue - 1 */
    uint64_t stats[RSC_STAT__MAX];
    uint64_t bypass[NET_RSC_BYPASS__MAX];
    uint64_t flushes[NET_RSC_FLUSH__MAX];
    /*
     * Per layout, the header bytes that a segment must have equal to the
     * first segment of its unit: all but lengths, IPv4 ID and checksum,
     * TTL, sequence and ACK numbers, PSH, window, TCP checksum, urgent
     * pointer and timestamp values.
     */
    uint8_t masks[RSC_LAYOUT__MAX][RSC_L234_WORDS * 8];
    RscQueue queues[];      /* one per receive queue */
};

/* Four 32-bit lanes, for rsc_csum() */
typedef uint32_t RscVec __attribute__((vector_size(16)));

static inline uint16_t rsc_fold(uint32_t sum)
{
    return ~net_checksum_finish(sum);
}

/*
 * One's complement sum of @len bytes taken as big-endian 16-bit words, as
 * net_checksum_add() returns it but a word at a time (RFC 1071: summing
 * in host order and swapping the folded result gives the same sum).
 * Validating the TCP checksum is the engine's main cost on backends
 * without vnet headers.
 */
static uint32_t rsc_csum(const uint8_t *p, size_t len)
{
    RscVec acc = { 0 }, acc2 = { 0 };
    uint64_t sum = 0, tail = 0;
    unsigned i;

    /*
     * 32 bytes at a time as 32-bit lanes, each lane summing its two 16-bit
     * halves: no lane overflows for @len below 256 KiB.
     */
    assert(len < 256 * KiB);
    for (; len >= 32; p += 32, len -= 32) {
        RscVec a, b;

        memcpy(&a, p, sizeof(a));
        memcpy(&b, p + 16, sizeof(b));
        acc += (a & 0xffff) + (a >> 16);
        acc2 += (b & 0xffff) + (b >> 16);
    }
    acc += acc2;
    for (i = 0; i < 4; i++) {
        sum += acc[i];
    }
    for (; len >= 4; p += 4, len -= 4) {
        sum += (uint32_t)ldl_he_p(p);
    }
    /* the last bytes keep their places in a zero-filled word */
    memcpy(&tail, p, len);
    sum += tail;
    sum = (sum & 0xffffffff) + (sum >> 32);
    sum = (sum & 0xffffffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return be16_to_cpu(sum);
}

/*
 * Whether the option-less IPv4 header @ip has a valid checksum: its 16-bit
 * words add up to 0xffff in one's complement (summed in host order, which
 * RFC 1071 allows for this test).
 */
static inline bool rsc_ip4_csum_ok(const uint8_t *ip)
{
    uint64_t sum = (uint64_t)(uint32_t)ldl_he_p(ip) +
                   (uint32_t)ldl_he_p(ip + 4) + (uint32_t)ldl_he_p(ip + 8) +
                   (uint32_t)ldl_he_p(ip + 12) + (uint32_t)ldl_he_p(ip + 16);

    sum = (sum & 0xffffffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return sum == 0xffff;
}

static uint32_t rsc_hash(const uint8_t *addrs, bool v6, uint32_t ports)
{
    uint64_t h = ldq_he_p(addrs) ^ ports;

    if (v6) {
        h = (h * 0x9e3779b97f4a7c15ull) ^ ldq_he_p(addrs + 8);
        h = (h * 0x9e3779b97f4a7c15ull) ^ ldq_he_p(addrs + 16);
        h = (h * 0x9e3779b97f4a7c15ull) ^ ldq_he_p(addrs + 24);
    }
    h *= 0x9e3779b97f4a7c15ull;
    return h >> 32;
}

/* Sum of the TCP pseudo-header for @tcp_len bytes of TCP segment. */
static uint32_t rsc_pseudo_sum(const uint8_t *addrs, bool v6, uint32_t tcp_len)
{
    return net_checksum_add(v6 ? 32 : 8, (uint8_t *)addrs) + IP_PROTO_TCP +
           (tcp_len >> 16) + (tcp_len & 0xffff);
}

static bool rsc_ipv6_ext_hdr(uint8_t nh)
{
    switch (nh) {
    case 0:     /* hop-by-hop */
    case 43:    /* routing */
    case 44:    /* fragment */
    case 50:    /* ESP */
    case 51:    /* AH */
    case 60:    /* destination options */
    case 135:   /* mobility */
    case 139:   /* HIP */
    case 140:   /* shim6 */
    case 253:
    case 254:
        return true;
    default:
        return false;
    }
}

/*
 * Walk the TCP options.  Returns true if they are only NOPs, EOL padding
 * and at most one timestamp option; *@ts_off is then the offset of its
 * TSval in the TCP header, or 0.
 */
static bool rsc_parse_options(const uint8_t *tcp, unsigned hl, uint8_t *ts_off)
{
    unsigned i = sizeof(struct tcp_hdr);

    *ts_off = 0;
    while (i < hl) {
        uint8_t kind = tcp[i];

        if (kind == RSC_TCPOPT_EOL) {
            for (; i < hl; i++) {
                if (tcp[i] != RSC_TCPOPT_EOL) {
                    return false;
                }
            }
            break;
        }
        if (kind == RSC_TCPOPT_NOP) {
            i++;
            continue;
        }
        if (kind != RSC_TCPOPT_TS || *ts_off || i + RSC_TCPOLEN_TS > hl ||
            tcp[i + 1] != RSC_TCPOLEN_TS) {
            return false;
        }
        *ts_off = i + 2;
        i += RSC_TCPOLEN_TS;
    }
    return true;
}

/*
 * Extract the headers of @buf (@size bytes, @vhl of them the backend's
 * vnet header) into @s and classify the frame.  Never reads outside @buf.
 * For everything but RSC_CLASS_DATA and RSC_CLASS_ACK, *@why says why the
 * frame is not merged.  @s->addrs is valid from RSC_CLASS_ADDRS on, the
 * connection key from RSC_CLASS_CONN on.
 */
static RscClass rsc_parse(const uint8_t *buf, size_t size, size_t vhl,
                          bool rsc4, bool rsc6, RscSeg *s, NetRscBypass *why)
{
    const uint8_t *ip, *tcp;
    size_t l3len;
    uint32_t l4len;
    uint16_t ethertype;
    uint8_t proto;

    memset(s, 0, sizeof(*s));
    if (vhl > size || size - vhl < ETH_HLEN) {
        *why = NET_RSC_BYPASS_MALFORMED;
        return RSC_CLASS_OTHER;
    }
    if (vhl >= sizeof(struct virtio_net_hdr)) {
        s->vnet_flags = buf[0];
        s->gso_type = buf[1];
        s->gso_size = lduw_le_p(buf + 4);
    }
    s->l2 = buf + vhl;
    l3len = size - vhl - ETH_HLEN;
    ip = s->l2 + ETH_HLEN;
    ethertype = lduw_be_p(s->l2 + 12);

    if (ethertype == ETH_P_IP) {
        uint16_t frag;

        if (!rsc4) {
            *why = NET_RSC_BYPASS_DISABLED;
            return RSC_CLASS_OTHER;
        }
        if (l3len < sizeof(struct ip_header)) {
            *why = NET_RSC_BYPASS_MALFORMED;
            return RSC_CLASS_OTHER;
        }
        /* Readable addresses: keep the order of their connections. */
        s->addrs = ip + 12;
        if ((ip[0] >> 4) != 4 || (ip[0] & 0xf) < 5 ||
            lduw_be_p(ip + 2) > l3len ||
            lduw_be_p(ip + 2) < (ip[0] & 0xf) * 4) {
            *why = NET_RSC_BYPASS_MALFORMED;
            return RSC_CLASS_ADDRS;
        }
        proto = ip[9];
        if (proto != IP_PROTO_TCP) {
            *why = NET_RSC_BYPASS_NOT_TCPIP;
            return RSC_CLASS_OTHER;
        }
        frag = lduw_be_p(ip + 6);
        if (frag & (IP_MF | IP_OFFMASK)) {
            *why = NET_RSC_BYPASS_FRAGMENT;
            return RSC_CLASS_ADDRS;
        }
        if ((ip[0] & 0xf) != 5) {
            *why = NET_RSC_BYPASS_IP_OPTIONS;
            return RSC_CLASS_ADDRS;
        }
        s->iphl = sizeof(struct ip_header);
        s->ipclass = ip[1] | (frag & IP_DF);
        s->ttl = ip[8];
        l4len = lduw_be_p(ip + 2) - s->iphl;
    } else if (ethertype == ETH_P_IPV6) {
        if (!rsc6) {
            *why = NET_RSC_BYPASS_DISABLED;
            return RSC_CLASS_OTHER;
        }
        if (l3len < sizeof(struct ip6_header)) {
            *why = NET_RSC_BYPASS_MALFORMED;
            return RSC_CLASS_OTHER;
        }
        s->v6 = 1;
        s->addrs = ip + 8;
        if ((ip[0] >> 4) != 6 ||
            lduw_be_p(ip + 4) > l3len - sizeof(struct ip6_header)) {
            *why = NET_RSC_BYPASS_MALFORMED;
            return RSC_CLASS_ADDRS;
        }
        proto = ip[6];
        if (proto != IP_PROTO_TCP) {
            if (!rsc_ipv6_ext_hdr(proto)) {
                *why = NET_RSC_BYPASS_NOT_TCPIP;
                return RSC_CLASS_OTHER;
            }
            *why = proto == 44 ? NET_RSC_BYPASS_FRAGMENT :
                                 NET_RSC_BYPASS_IP_OPTIONS;
            return RSC_CLASS_ADDRS;
        }
        s->iphl = sizeof(struct ip6_header);
        s->ipclass = ldl_be_p(ip) & 0x0fffffff;
        s->ttl = ip[7];
        l4len = lduw_be_p(ip + 4);
    } else {
        *why = NET_RSC_BYPASS_NOT_TCPIP;
        return RSC_CLASS_OTHER;
    }

    tcp = ip + s->iphl;
    /* Data offset read byte-wise: the header may be unaligned. */
    if (l4len < sizeof(struct tcp_hdr) ||
        (tcp[12] >> 4) * 4 < sizeof(struct tcp_hdr) ||
        (tcp[12] >> 4) * 4 > l4len) {
        *why = NET_RSC_BYPASS_MALFORMED;
        return RSC_CLASS_ADDRS;
    }
    s->tcphl = (tcp[12] >> 4) * 4;
    s->ports = ldl_he_p(tcp);
    s->hash = rsc_hash(s->addrs, s->v6, s->ports);
    s->seq = ldl_be_p(tcp + 4);
    s->ack = ldl_be_p(tcp + 8);
    s->tcp_flags = tcp[13];
    s->win = lduw_be_p(tcp + 14);
    s->payload = tcp + s->tcphl;
    s->payload_len = l4len - s->tcphl;

    /* From here on, the frame belongs to a connection. */
    if (s->gso_type != VIRTIO_NET_HDR_GSO_NONE) {
        *why = NET_RSC_BYPASS_BACKEND_GSO;
        return RSC_CLASS_CONN;
    }
    if (!s->v6 && !rsc_ip4_csum_ok(ip)) {
        *why = NET_RSC_BYPASS_CHECKSUM;
        return RSC_CLASS_CONN;
    }
    if ((tcp[12] & 0x0f) || (s->tcp_flags & ~RSC_TCP_FLAGS_MERGE) ||
        !(s->tcp_flags & TCP_FLAG_ACK)) {
        *why = NET_RSC_BYPASS_TCP_FLAGS;
        return RSC_CLASS_CONN;
    }
    if (s->tcphl == 32 && ldl_be_p(tcp + 20) == RSC_TCPOPT_TS_ALIGNED) {
        /* NOP, NOP, timestamp: what Linux and Windows send */
        s->ts_off = 24;
    } else if (s->tcphl > 32 ||
               !rsc_parse_options(tcp, s->tcphl, &s->ts_off)) {
        *why = NET_RSC_BYPASS_TCP_OPTIONS;
        return RSC_CLASS_CONN;
    }
    if (s->ts_off) {
        s->tsval = ldl_be_p(tcp + s->ts_off);
        s->tsecr = ldl_be_p(tcp + s->ts_off + 4);
    }
    if (!(s->vnet_flags & (VIRTIO_NET_HDR_F_DATA_VALID |
                           VIRTIO_NET_HDR_F_NEEDS_CSUM)) &&
        net_checksum_finish(rsc_pseudo_sum(s->addrs, s->v6, l4len) +
                            rsc_csum(tcp, l4len))) {
        *why = NET_RSC_BYPASS_CHECKSUM;
        return RSC_CLASS_CONN;
    }
    if (s->payload_len == 0) {
        if (s->tcp_flags & TCP_FLAG_PSH) {
            *why = NET_RSC_BYPASS_PURE_ACK;
            return RSC_CLASS_CONN;
        }
        return RSC_CLASS_ACK;
    }
    return RSC_CLASS_DATA;
}

static bool rsc_same_conn(const RscFlow *f, const RscSeg *s)
{
    if (f->hash != s->hash || f->v6 != s->v6 ||
        rsc_flow_ports(f) != s->ports) {
        return false;
    }
    if (!s->v6) {
        return ldq_he_p(rsc_flow_addrs(f)) == ldq_he_p(s->addrs);
    }
    return !memcmp(rsc_flow_addrs(f), s->addrs, 32);
}

static inline RscFlow *rsc_lookup(NetRscChain *c, RscQueue *q,
                                  const RscSeg *s)
{
    uint16_t i;

    for (i = q->buckets[s->hash & c->bucket_mask]; i != RSC_NIL;
         i = q->flows[i].hnext) {
        if (rsc_same_conn(&q->flows[i], s)) {
            return &q->flows[i];
        }
    }
    return NULL;
}

/* Unlink @f from its hash bucket and the age list, and free it. */
static void rsc_release(NetRscChain *c, RscQueue *q, RscFlow *f)
{
    uint16_t idx = f - q->flows;
    uint16_t *link = &q->buckets[f->hash & c->bucket_mask];

    while (*link != idx) {
        link = &q->flows[*link].hnext;
    }
    *link = f->hnext;

    if (f->older != RSC_NIL) {
        q->flows[f->older].newer = f->newer;
    } else {
        q->oldest = f->newer;
    }
    if (f->newer != RSC_NIL) {
        q->flows[f->newer].older = f->older;
    } else {
        q->newest = f->older;
    }
    if (q->prev == idx) {
        q->prev = q->last = RSC_NIL;
    }
    f->unit = NULL;
    f->hnext = q->free;
    q->free = idx;
    q->held--;
}

/*
 * Patch the headers saved in @f into those of the coalesced packet and
 * fill @hdr.  Called once per unit of two or more segments, at flush.
 */
static void rsc_finalise(RscFlow *f, NetRscVnetHdr *hdr)
{
    uint8_t *ip = f->l234 + ETH_HLEN;
    uint8_t *tcp = ip + f->iphl;
    uint32_t tcp_len = f->l234_len - ETH_HLEN - f->iphl + f->payload;

    if (f->v6) {
        stw_be_p(ip + 4, tcp_len);
        ip[7] = f->ttl;
    } else {
        stw_be_p(ip + 2, f->iphl + tcp_len);
        ip[8] = f->ttl;
        stw_be_p(ip + 10, 0);
        stw_be_p(ip + 10, net_checksum_finish(net_checksum_add(f->iphl, ip)));
    }
    stl_be_p(tcp + 8, f->ack);
    tcp[13] |= f->psh;
    stw_be_p(tcp + 14, f->win);
    if (f->ts_off) {
        stl_be_p(tcp + f->ts_off, f->tsval);
        stl_be_p(tcp + f->ts_off + 4, f->tsecr);
    }
    stw_be_p(tcp + 16, rsc_fold(rsc_pseudo_sum(ip + (f->v6 ? 8 : 12), f->v6,
                                               tcp_len)));

    hdr->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_RSC_INFO;
    hdr->gso_type = f->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 :
                            VIRTIO_NET_HDR_GSO_TCPV4;
    hdr->hdr_len = f->l234_len;
    hdr->gso_size = f->mss;
    hdr->csum_start = f->segs;
    hdr->csum_offset = 0;
}

/* Deliver the unit of @f to the guest and free @f. */
static void rsc_flush(NetRscChain *c, unsigned qi, RscFlow *f,
                      NetRscFlushCause cause)
{
    RscQueue *q = &c->queues[qi];
    void *unit = f->unit;

    trace_virtio_net_rsc_flush(qi, rsc_flush_names[cause], f->segs,
                               f->l234_len + f->payload);
    c->flushes[cause]++;
    if (f->segs == 1) {
        c->stats[RSC_STAT_UNCOALESCED]++;
        rsc_release(c, q, f);
        c->ops->unit_end(c->opaque, unit, NULL, NULL, 0, f->frame_len);
    } else {
        NetRscVnetHdr hdr;

        rsc_finalise(f, &hdr);
        c->stats[RSC_STAT_UNITS]++;
        rsc_release(c, q, f);
        c->ops->unit_end(c->opaque, unit, &hdr, f->l234, f->l234_len,
                         f->l234_len + f->payload);
    }
}

/* Flush every unit of the address pair of @s (IP fragments and such). */
static void rsc_flush_addrs(NetRscChain *c, unsigned qi, const RscSeg *s)
{
    RscQueue *q = &c->queues[qi];
    uint16_t i = q->oldest;

    while (i != RSC_NIL) {
        RscFlow *f = &q->flows[i];

        i = f->newer;
        if (f->v6 == s->v6 &&
            !memcmp(rsc_flow_addrs(f), s->addrs, s->v6 ? 32 : 8)) {
            rsc_flush(c, qi, f, NET_RSC_FLUSH_EXCEPTION);
        }
    }
}

/*
 * Deliver a frame alone.  Returns @size, or 0 if the guest had no buffer,
 * in which case held units are released so that the guest can refill.
 */
static ssize_t rsc_deliver(NetRscChain *c, unsigned qi, const uint8_t *buf,
                           size_t size, const NetRscVnetHdr *hdr,
                           NetRscBypass why)
{
    ssize_t ret = c->ops->deliver(c->opaque, qi, buf, size, hdr);

    if (ret == 0) {
        trace_virtio_net_rsc_not_accepted(qi, size);
        c->stats[RSC_STAT_NOT_ACCEPTED]++;
        virtio_net_rsc_flush_queue(c, qi, NET_RSC_FLUSH_NO_BUFFER);
        return 0;
    }
    trace_virtio_net_rsc_bypass(qi, rsc_bypass_names[why], size);
    c->bypass[why]++;
    c->stats[RSC_STAT_UNCOALESCED]++;
    return ret;
}

/* Why the data segment @s cannot join the unit of @f, or -1 if it can. */
static int rsc_match(const RscFlow *f, const RscSeg *s)
{
    if (s->seq != f->next_seq ||
        memcmp(s->l2, f->l234, 2 * ETH_ALEN) ||
        (int32_t)(s->ack - f->ack) < 0 ||
        s->ipclass != f->ipclass ||
        (s->tcp_flags & RSC_TCP_FLAG_ECN) != f->ecn_flags ||
        s->tcphl + s->iphl + ETH_HLEN != f->l234_len ||
        s->ts_off != f->ts_off ||
        (f->ts_off && (int32_t)(s->tsval - f->tsval) < 0) ||
        s->payload_len > f->mss) {
        return NET_RSC_FLUSH_EXCEPTION;
    }
    if (f->l234_len + f->payload + s->payload_len > NET_RSC_MAX_FRAME ||
        f->segs == UINT16_MAX) {
        return NET_RSC_FLUSH_FULL;
    }
    return -1;
}

/* Start a unit with the data segment @s.  Returns as receive does. */
static ssize_t rsc_start(NetRscChain *c, unsigned qi, const RscSeg *s,
                         const uint8_t *buf, size_t size)
{
    RscQueue *q = &c->queues[qi];
    uint16_t idx, *bucket;
    RscFlow *f;
    void *unit;

    if (q->free == RSC_NIL) {
        rsc_flush(c, qi, &q->flows[q->oldest], NET_RSC_FLUSH_EVICT);
    }
    switch (c->ops->unit_begin(c->opaque, qi, buf, size,
                               ETH_HLEN + s->iphl + s->tcphl + s->payload_len,
                               &unit)) {
    case NET_RSC_BEGIN_OK:
        break;
    case NET_RSC_BEGIN_NO_BUFFER:
        trace_virtio_net_rsc_not_accepted(qi, size);
        c->stats[RSC_STAT_NOT_ACCEPTED]++;
        virtio_net_rsc_flush_queue(c, qi, NET_RSC_FLUSH_NO_BUFFER);
        return 0;
    default:
        return rsc_deliver(c, qi, buf, size, NULL, NET_RSC_BYPASS_NO_UNIT);
    }

    idx = q->free;
    f = &q->flows[idx];
    q->free = f->hnext;
    q->held++;

    f->hash = s->hash;
    f->v6 = s->v6;
    f->next_seq = s->seq + s->payload_len;
    f->ack = s->ack;
    f->tsval = s->tsval;
    f->tsecr = s->tsecr;
    f->ipclass = s->ipclass;
    f->payload = s->payload_len;
    f->frame_len = size - (s->l2 - buf);
    f->start_ns = c->ops->now(c->opaque);
    f->unit = unit;
    f->win = s->win;
    f->mss = s->payload_len;
    f->segs = 1;
    f->l234_len = ETH_HLEN + s->iphl + s->tcphl;
    f->iphl = s->iphl;
    f->ts_off = s->ts_off;
    f->ecn_flags = s->tcp_flags & RSC_TCP_FLAG_ECN;
    f->psh = 0;
    f->ttl = s->ttl;
    if (s->tcphl == sizeof(struct tcp_hdr)) {
        f->layout = s->v6 ? RSC_LAYOUT_V6 : RSC_LAYOUT_V4;
    } else if (s->tcphl == 32 && s->ts_off == 24) {
        f->layout = s->v6 ? RSC_LAYOUT_V6_TS : RSC_LAYOUT_V4_TS;
    } else {
        f->layout = RSC_LAYOUT_NONE;
    }
    if (size - (s->l2 - buf) >= sizeof(f->l234)) {
        /* a fixed size copies faster; the bytes past l234_len are unused */
        memcpy(f->l234, s->l2, sizeof(f->l234));
    } else {
        memcpy(f->l234, s->l2, f->l234_len);
    }

    bucket = &q->buckets[s->hash & c->bucket_mask];
    f->hnext = *bucket;
    *bucket = idx;
    f->newer = RSC_NIL;
    f->older = q->newest;
    if (q->newest != RSC_NIL) {
        q->flows[q->newest].newer = idx;
    } else {
        q->oldest = idx;
    }
    q->newest = idx;
    q->prev = idx;
    q->last = RSC_NIL;

    trace_virtio_net_rsc_unit_start(qi, s->seq, s->payload_len);
    return size;
}

/*
 * Add @len bytes of payload at @payload, of a segment with sequence
 * number @seq and the given header fields, to the unit of @f.  Returns
 * false if the unit cannot grow.
 */
static inline bool rsc_append(NetRscChain *c, unsigned qi, RscFlow *f,
                              const uint8_t *payload, uint32_t len,
                              uint32_t seq, uint32_t ack, uint16_t win,
                              uint32_t tsval, uint32_t tsecr,
                              uint8_t tcp_flags, uint8_t ttl)
{
    if (!c->ops->unit_write(c->opaque, f->unit, f->l234_len + f->payload,
                            payload, len)) {
        return false;
    }
    f->payload += len;
    f->next_seq += len;
    f->ack = ack;
    f->win = win;
    f->tsval = tsval;
    f->tsecr = tsecr;
    f->psh |= tcp_flags & TCP_FLAG_PSH;
    f->ttl = MIN(f->ttl, ttl);
    f->segs++;
    c->stats[RSC_STAT_MERGED]++;
    trace_virtio_net_rsc_merge(qi, seq, len, f->segs);
    if (len < f->mss) {
        rsc_flush(c, qi, f, NET_RSC_FLUSH_SHORT);
    }
    return true;
}

/*
 * @f took a data segment: track runs of one connection, for which
 * rsc_fast() needs no lookup.
 */
static inline void rsc_note_merge(RscQueue *q, const RscFlow *f)
{
    uint16_t idx = f - q->flows;

    if (f->unit) {          /* else the merge flushed it */
        q->last = q->prev == idx ? idx : RSC_NIL;
        q->prev = idx;
    }
}

/* Add the data segment @s to the unit of @f.  Returns false if full. */
static bool rsc_merge(NetRscChain *c, unsigned qi, RscFlow *f,
                      const RscSeg *s)
{
    if (!rsc_append(c, qi, f, s->payload, s->payload_len, s->seq, s->ack,
                    s->win, s->tsval, s->tsecr, s->tcp_flags, s->ttl)) {
        return false;
    }
    rsc_note_merge(&c->queues[qi], f);
    return true;
}

/*
 * A segment without payload for the connection of @f.  An ACK that only
 * changes the window of a coalesced unit is absorbed; anything else
 * flushes the unit and is delivered after it.
 */
static ssize_t rsc_ack(NetRscChain *c, unsigned qi, RscFlow *f,
                       const RscSeg *s, const uint8_t *buf, size_t size)
{
    NetRscBypass why = NET_RSC_BYPASS_PURE_ACK;

    if (s->seq == f->next_seq && s->ack == f->ack &&
        !memcmp(s->l2, f->l234, 2 * ETH_ALEN) &&
        s->ipclass == f->ipclass &&
        (s->tcp_flags & RSC_TCP_FLAG_ECN) == f->ecn_flags &&
        s->tcphl + s->iphl + ETH_HLEN == f->l234_len &&
        s->ts_off == f->ts_off &&
        (!f->ts_off || (int32_t)(s->tsval - f->tsval) >= 0)) {
        if (s->win == f->win) {
            why = NET_RSC_BYPASS_DUP_ACK;
        } else if (f->segs > 1) {
            f->win = s->win;
            f->tsval = s->tsval;
            f->tsecr = s->tsecr;
            f->ttl = MIN(f->ttl, s->ttl);
            c->stats[RSC_STAT_WINDOW_UPDATES]++;
            return size;
        }
    }
    rsc_flush(c, qi, f, NET_RSC_FLUSH_EXCEPTION);
    return rsc_deliver(c, qi, buf, size, NULL, why);
}

/*
 * Deliver a large TCP packet from the backend (vnet header GSO) with its
 * segment count.  Out of line: its header is no burden on the fast path.
 */
static G_GNUC_NO_INLINE ssize_t rsc_deliver_gso(NetRscChain *c, unsigned qi,
                                                const RscSeg *s,
                                                const uint8_t *buf,
                                                size_t size)
{
    NetRscVnetHdr gso = {
        .flags = s->vnet_flags | VIRTIO_NET_HDR_F_RSC_INFO,
        .gso_type = s->gso_type,
        .hdr_len = lduw_le_p(buf + 2),
        .gso_size = s->gso_size,
        .csum_start = s->gso_size ?
            MIN(DIV_ROUND_UP(s->payload_len, s->gso_size), UINT16_MAX) : 1,
    };

    return rsc_deliver(c, qi, buf, size, &gso, NET_RSC_BYPASS_BACKEND_GSO);
}

static inline ssize_t rsc_classify(NetRscChain *c, unsigned qi,
                                   const uint8_t *buf, size_t size,
                                   size_t vhl, bool rsc4, bool rsc6)
{
    RscQueue *q = &c->queues[qi];
    NetRscBypass why;
    RscFlow *f;
    RscSeg s;

    switch (rsc_parse(buf, size, vhl, rsc4, rsc6, &s, &why)) {
    case RSC_CLASS_OTHER:
        return rsc_deliver(c, qi, buf, size, NULL, why);
    case RSC_CLASS_ADDRS:
        rsc_flush_addrs(c, qi, &s);
        return rsc_deliver(c, qi, buf, size, NULL, why);
    case RSC_CLASS_CONN:
        f = rsc_lookup(c, q, &s);
        if (f) {
            rsc_flush(c, qi, f, NET_RSC_FLUSH_EXCEPTION);
        }
        if (why != NET_RSC_BYPASS_BACKEND_GSO ||
            (s.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) !=
            (s.v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4)) {
            return rsc_deliver(c, qi, buf, size, NULL, why);
        }
        return rsc_deliver_gso(c, qi, &s, buf, size);
    case RSC_CLASS_ACK:
        f = rsc_lookup(c, q, &s);
        if (f) {
            return rsc_ack(c, qi, f, &s, buf, size);
        }
        return rsc_deliver(c, qi, buf, size, NULL, NET_RSC_BYPASS_PURE_ACK);
    case RSC_CLASS_DATA:
        f = rsc_lookup(c, q, &s);
        if (f) {
            int cause = rsc_match(f, &s);

            if (cause < 0) {
                if (rsc_merge(c, qi, f, &s)) {
                    return size;
                }
                cause = NET_RSC_FLUSH_FULL;
            }
            rsc_flush(c, qi, f, cause);
        }
        return rsc_start(c, qi, &s, buf, size);
    }
    g_assert_not_reached();
}

/* Every frame that rsc_fast() does not take. */
static G_GNUC_NO_INLINE ssize_t rsc_receive(NetRscChain *c, unsigned qi,
                                            const uint8_t *buf, size_t size,
                                            size_t vhl, bool rsc4, bool rsc6)
{
    ssize_t ret = rsc_classify(c, qi, buf, size, vhl, rsc4, rsc6);

    if (ret > 0) {
        c->stats[RSC_STAT_SEGMENTS]++;
    }
    return ret;
}

/* The bits of the 64-bit words at @off of @a and @b that differ in @mask. */
static inline uint64_t rsc_masked_diff(const uint8_t *a, const uint8_t *b,
                                       const uint8_t *mask, unsigned off)
{
    return (ldq_he_p(a + off) ^ ldq_he_p(b + off)) & ldq_he_p(mask + off);
}

/*
 * The unit that the frame at @l2 (RSC_L234_WORDS * 8 bytes at least) may
 * continue: during a run of one connection the queue's last one, else the
 * first whose key hashes like the frame's addresses and ports would if it
 * were TCP without IP options.  rsc_fast() compares every header byte that
 * must not change, addresses and ports included, so a wrong guess only
 * costs the full path.
 */
static inline RscFlow *rsc_fast_flow(NetRscChain *c, RscQueue *q,
                                     const uint8_t *l2)
{
    const uint8_t *ip = l2 + ETH_HLEN;
    uint32_t hash;
    uint16_t i;

    if (q->last != RSC_NIL) {
        return &q->flows[q->last];
    }
    switch (lduw_be_p(l2 + 12)) {
    case ETH_P_IP:
        hash = rsc_hash(ip + 12, false,
                        ldl_he_p(ip + sizeof(struct ip_header)));
        break;
    case ETH_P_IPV6:
        hash = rsc_hash(ip + 8, true,
                        ldl_he_p(ip + sizeof(struct ip6_header)));
        break;
    default:
        return NULL;
    }
    for (i = q->buckets[hash & c->bucket_mask]; i != RSC_NIL;
         i = q->flows[i].hnext) {
        if (q->flows[i].hash == hash) {
            return &q->flows[i];
        }
    }
    return NULL;
}

/*
 * The fast path: a data segment that continues a unit with the same header
 * layout.  Its headers must equal those of the unit's first segment (which
 * passed every check of rsc_parse()) except for the fields the mask leaves
 * out, so only those fields are checked here.  Anything else goes to
 * rsc_receive(), which decides as if this had not been tried.  Only tried
 * when the queue holds units.
 */
static G_GNUC_NO_INLINE ssize_t rsc_fast(NetRscChain *c, unsigned qi,
                                          const uint8_t *buf, size_t size,
                                          size_t vhl, bool rsc4, bool rsc6)
{
    RscQueue *q = &c->queues[qi];
    RscFlow *f;
    const uint8_t *l2, *ip, *tcp, *mask;
    uint32_t l4len, tcphl, len, seq, ack, tsval = 0, tsecr = 0;
    bool csum_ok = false;
    uint8_t ttl;

    QEMU_BUILD_BUG_ON(ETH_HLEN + sizeof(struct ip6_header) + 4 >
                      RSC_L234_WORDS * 8);
    if (vhl > size || size - vhl < RSC_L234_WORDS * 8) {
        goto slow;
    }
    f = rsc_fast_flow(c, q, buf + vhl);
    if (!f || f->layout == RSC_LAYOUT_NONE) {
        goto slow;
    }
    if (vhl >= sizeof(struct virtio_net_hdr)) {
        if (buf[1] != VIRTIO_NET_HDR_GSO_NONE) {
            goto slow;
        }
        csum_ok = buf[0] & (VIRTIO_NET_HDR_F_DATA_VALID |
                            VIRTIO_NET_HDR_F_NEEDS_CSUM);
    }
    l2 = buf + vhl;
    mask = c->masks[f->layout];
    QEMU_BUILD_BUG_ON(RSC_L234_WORDS != 11);
    /* addresses and (IPv4) ports first: another connection fails fast */
    if (rsc_masked_diff(l2, f->l234, mask, 24) |
        rsc_masked_diff(l2, f->l234, mask, 32)) {
        goto slow;
    }
    if (rsc_masked_diff(l2, f->l234, mask, 0) |
        rsc_masked_diff(l2, f->l234, mask, 8) |
        rsc_masked_diff(l2, f->l234, mask, 16) |
        rsc_masked_diff(l2, f->l234, mask, 40) |
        rsc_masked_diff(l2, f->l234, mask, 48) |
        rsc_masked_diff(l2, f->l234, mask, 56) |
        rsc_masked_diff(l2, f->l234, mask, 64) |
        rsc_masked_diff(l2, f->l234, mask, 72) |
        rsc_masked_diff(l2, f->l234, mask, 80)) {
        goto slow;
    }
    ip = l2 + ETH_HLEN;
    if (f->v6) {
        l4len = lduw_be_p(ip + 4);
        if (!rsc6 || l4len > size - vhl - ETH_HLEN - f->iphl) {
            goto slow;
        }
        ttl = ip[7];
    } else {
        l4len = lduw_be_p(ip + 2) - f->iphl;
        if (!rsc4 || lduw_be_p(ip + 2) > size - vhl - ETH_HLEN ||
            !rsc_ip4_csum_ok(ip)) {
            goto slow;
        }
        ttl = ip[8];
    }
    tcp = ip + f->iphl;
    tcphl = f->l234_len - ETH_HLEN - f->iphl;
    /* no payload (or a length shorter than the headers): not for here */
    if ((int32_t)l4len <= (int32_t)tcphl) {
        goto slow;
    }
    len = l4len - tcphl;
    seq = ldl_be_p(tcp + 4);
    ack = ldl_be_p(tcp + 8);
    if (f->ts_off) {
        tsval = ldl_be_p(tcp + f->ts_off);
        tsecr = ldl_be_p(tcp + f->ts_off + 4);
    }
    if (seq != f->next_seq || (int32_t)(ack - f->ack) < 0 ||
        (f->ts_off && (int32_t)(tsval - f->tsval) < 0) || len > f->mss ||
        f->l234_len + f->payload + len > NET_RSC_MAX_FRAME ||
        f->segs == UINT16_MAX ||
        (!csum_ok &&
         net_checksum_finish(rsc_pseudo_sum(ip + (f->v6 ? 8 : 12), f->v6,
                                            l4len) +
                             rsc_csum(tcp, l4len))) ||
        !rsc_append(c, qi, f, tcp + tcphl, len, seq, ack,
                    lduw_be_p(tcp + 14), tsval, tsecr, tcp[13], ttl)) {
        goto slow;
    }
    if (q->last == RSC_NIL) {
        /* found by its key (else prev and last are @f already) */
        rsc_note_merge(q, f);
    }
    c->stats[RSC_STAT_SEGMENTS]++;
    return size;

slow:
    return rsc_receive(c, qi, buf, size, vhl, rsc4, rsc6);
}

/* The header bytes of @layout that rsc_fast() compares (see masks). */
static void rsc_make_mask(unsigned layout, uint8_t *mask)
{
    bool v6 = layout == RSC_LAYOUT_V6 || layout == RSC_LAYOUT_V6_TS;
    bool ts = layout == RSC_LAYOUT_V4_TS || layout == RSC_LAYOUT_V6_TS;
    uint8_t *ip = mask + ETH_HLEN;
    uint8_t *tcp = ip + (v6 ? sizeof(struct ip6_header) :
                              sizeof(struct ip_header));
    unsigned tcphl = ts ? 32 : sizeof(struct tcp_hdr);

    memset(mask, 0, RSC_L234_WORDS * 8);
    memset(mask, 0xff, tcp + tcphl - mask);
    if (v6) {
        memset(ip + 4, 0, 2);       /* payload length */
        ip[7] = 0;                  /* hop limit */
    } else {
        memset(ip + 2, 0, 4);       /* total length, identification */
        ip[8] = 0;                  /* TTL */
        memset(ip + 10, 0, 2);      /* header checksum */
    }
    memset(tcp + 4, 0, 8);          /* sequence and ACK numbers */
    tcp[13] = (uint8_t)~TCP_FLAG_PSH;
    memset(tcp + 14, 0, 6);         /* window, checksum, urgent pointer */
    if (ts) {
        memset(tcp + 24, 0, 8);     /* TSval, TSecr */
    }
}

ssize_t virtio_net_rsc_receive(NetRscChain *chain, unsigned queue,
                               const uint8_t *buf, size_t size,
                               size_t vnet_hdr_len, bool rsc4, bool rsc6)
{
    assert(queue < chain->nqueues);
    if (chain->queues[queue].held) {
        return rsc_fast(chain, queue, buf, size, vnet_hdr_len, rsc4, rsc6);
    }
    return rsc_receive(chain, queue, buf, size, vnet_hdr_len, rsc4, rsc6);
}

void virtio_net_rsc_flush_queue(NetRscChain *chain, unsigned queue,
                                NetRscFlushCause cause)
{
    RscQueue *q = &chain->queues[queue];

    while (q->oldest != RSC_NIL) {
        rsc_flush(chain, queue, &q->flows[q->oldest], cause);
    }
}

void virtio_net_rsc_flush_all(NetRscChain *chain, NetRscFlushCause cause)
{
    unsigned i;

    for (i = 0; chain && i < chain->nqueues; i++) {
        virtio_net_rsc_flush_queue(chain, i, cause);
    }
}

int64_t virtio_net_rsc_deadline(NetRscChain *chain, unsigned queue)
{
    RscQueue *q = &chain->queues[queue];

    if (q->oldest == RSC_NIL) {
        return -1;
    }
    return q->flows[q->oldest].start_ns + chain->interval_ns;
}

int64_t virtio_net_rsc_expire(NetRscChain *chain, unsigned queue,
                              int64_t now_ns)
{
    RscQueue *q = &chain->queues[queue];
    int64_t due;

    while ((due = virtio_net_rsc_deadline(chain, queue)) >= 0 &&
           due <= now_ns) {
        rsc_flush(chain, queue, &q->flows[q->oldest], NET_RSC_FLUSH_TIMER);
    }
    return due;
}

unsigned virtio_net_rsc_held(NetRscChain *chain)
{
    unsigned i, held = 0;

    for (i = 0; chain && i < chain->nqueues; i++) {
        held += chain->queues[i].held;
    }
    return held;
}

void virtio_net_rsc_stats_foreach(NetRscChain *chain,
                                  void (*fn)(const char *name,
                                             uint64_t value,
                                             void *opaque),
                                  void *opaque)
{
    unsigned i;

    for (i = 0; i < RSC_STAT__MAX; i++) {
        fn(rsc_stat_names[i], chain ? chain->stats[i] : 0, opaque);
    }
    for (i = 0; i < NET_RSC_BYPASS__MAX; i++) {
        fn(rsc_bypass_names[i], chain ? chain->bypass[i] : 0, opaque);
    }
    for (i = 0; i < NET_RSC_FLUSH__MAX; i++) {
        fn(rsc_flush_names[i], chain ? chain->flushes[i] : 0, opaque);
    }
}

NetRscChain *virtio_net_rsc_new(const NetRscOps *ops, void *opaque,
                                unsigned queues, unsigned max_flows,
                                uint64_t interval_ns)
{
    NetRscChain *c;
    unsigned i, j;

    assert(queues > 0);
    assert(max_flows > 0 && max_flows <= NET_RSC_MAX_MAX_FLOWS);
    c = g_malloc0(sizeof(*c) + queues * sizeof(RscQueue));
    c->ops = ops;
    c->opaque = opaque;
    c->interval_ns = interval_ns;
    c->nqueues = queues;
    c->max_flows = max_flows;
    c->bucket_mask = pow2ceil(2 * max_flows) - 1;
    for (i = 0; i < RSC_LAYOUT__MAX; i++) {
        rsc_make_mask(i, c->masks[i]);
    }
    for (i = 0; i < queues; i++) {
        RscQueue *q = &c->queues[i];

        q->flows = qemu_memalign(RSC_FLOW_ALIGN, sizeof(RscFlow) * max_flows);
        memset(q->flows, 0, sizeof(RscFlow) * max_flows);
        q->buckets = g_new(uint16_t, c->bucket_mask + 1);
        for (j = 0; j <= c->bucket_mask; j++) {
            q->buckets[j] = RSC_NIL;
        }
        for (j = 0; j < max_flows; j++) {
            q->flows[j].hnext = j + 1 < max_flows ? j + 1 : RSC_NIL;
        }
        q->free = 0;
        q->oldest = q->newest = q->prev = q->last = RSC_NIL;
    }
    return c;
}

void virtio_net_rsc_delete(NetRscChain *chain)
{
    unsigned i;

    if (!chain) {
        return;
    }
    assert(virtio_net_rsc_held(chain) == 0);
    for (i = 0; i < chain->nqueues; i++) {
        qemu_vfree(chain->queues[i].flows);
        g_free(chain->queues[i].buckets);
    }
    g_free(chain);
}
