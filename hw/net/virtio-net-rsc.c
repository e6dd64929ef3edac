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
 * Every frame takes the same steps:
 *
 *   rsc_parse()    extracts the headers once into an RscSeg and says what
 *                  the frame is: of no connection, of an address pair only
 *                  (a fragment, say), or a segment of a connection, which
 *                  is mergeable or carries the reason why not;
 *   rsc_lookup()   finds the flow of the segment's connection, if any;
 *   rsc_decide()   the one merge decision: compares the segment with the
 *                  unit under the chain's rules and returns a verdict
 *                  (merge; merge as the last segment; absorb a window
 *                  update; start a unit; deliver alone - the last two
 *                  after flushing the unit, if there is one) and its cause;
 *   rsc_act()      carries the verdict out;
 *   rsc_finalise() patches the unit's headers once, when it is flushed.
 *
 * rsc_fast() is a shortcut into the same decision for the common case, a
 * data segment that continues a unit: it finds the flow without a parse
 * (the flow that took the queue's last segments, else a hash probe) and
 * proves with masked 64-bit compares that every header byte that must not
 * change equals the unit's.  The segment then goes through rsc_decide()
 * and rsc_merge() like any other; when the shortcut proves less, or the
 * verdict is not a merge, the frame takes the full path as if the
 * shortcut had not been tried.
 *
 * What differs between rule sets - Microsoft's RSC rules for guests that
 * negotiated VIRTIO_NET_F_RSC_EXT, Linux's hardware GRO rules for the
 * others - is an RscRules table: data that rsc_parse(), rsc_decide() and
 * rsc_finalise() read, not code.
 *
 * Helpers report and callers act: a unit is flushed or a frame delivered
 * only where a verdict (rsc_act(), rsc_merge()) or the caller of a public
 * entry point asks for it, never as a side effect of a helper.
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
#ifdef CONFIG_AVX2_OPT
#include <immintrin.h>
#include "host/cpuinfo.h"
#endif

/* IPv6 extension header bytes a unit may carry (GRO rules only) */
#define RSC_MAX_V6_EXT 16
/* Ethernet + IPv6 + TCP with the timestamp option, for rsc_fast() */
#define RSC_FAST_L234 (ETH_HLEN + 40 + 32)
/* RSC_FAST_L234 rounded up to 64-bit words */
#define RSC_L234_WORDS DIV_ROUND_UP(RSC_FAST_L234, 8)
/* The largest headers we merge: with IPv6 extension headers */
#define RSC_MAX_L234 ROUND_UP(RSC_FAST_L234 + RSC_MAX_V6_EXT, 8)

#define RSC_NIL UINT16_MAX

#define RSC_TCP_FLAG_ECN (TCP_FLAG_ECE | TCP_FLAG_CWR)

#define RSC_TCPOPT_EOL 0
#define RSC_TCPOPT_NOP 1
#define RSC_TCPOPT_TS 8
#define RSC_TCPOLEN_TS 10
/* NOP, NOP, then the kind and length of a timestamp option */
#define RSC_TCPOPT_TS_ALIGNED 0x0101080a

/* Offset of the checksum field in the TCP header */
#define RSC_TCP_CSUM_OFF 16

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
    [NET_RSC_BYPASS_PUSH] = "bypass-push",
    [NET_RSC_BYPASS_TRAILER] = "bypass-trailer",
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
    [NET_RSC_FLUSH_PUSH] = "flush-push",
};

/*
 * A rule set: what may differ between the segments of one unit, and how a
 * unit is delivered.  Fields that every rule set keeps equal (addresses,
 * ports, MAC addresses, IP version, TOS/DF or traffic class/flow label,
 * header lengths, TCP flags but PSH, option bytes but the timestamp
 * values, sequence continuity) are not listed.
 */
typedef struct RscRules {
    const char *name;       /* for trace events */
    uint8_t merge_flags;    /* TCP flags a mergeable segment may carry */
    bool ack_advances;      /* ACK may advance (else it stays equal) */
    bool window_changes;    /* window may change (else it stays equal) */
    bool ts_advances;       /* TSval may advance (else TSval, TSecr equal) */
    bool ttl_minimum;       /* TTL may differ, the unit takes the minimum */
    bool ip_id_step;        /* IPv4 ID +1 per segment, or fixed with DF */
    bool ecn_alone;         /* a change of ECE goes alone (else starts) */
    bool window_updates;    /* absorb pure ACKs that only move the window */
    bool v6_ext;            /* IPv6 extension headers may be merged */
    bool psh_ends;          /* PSH ends the unit, and a unit cannot start */
    /*
     * Only what GSO gives back byte for byte is merged: a frame with bytes
     * after the IP datagram or the IPv4 reserved flag goes alone, the
     * urgent pointer stays equal even without URG.
     */
    bool exact;
    bool rsc_info;          /* header: RSC_INFO (else csum_start/offset) */
} RscRules;

static const RscRules rsc_rules[NET_RSC_PROFILE__MAX] = {
    /* Microsoft's RSC rules, VIRTIO_NET_F_RSC_EXT (Windows netkvm) */
    [NET_RSC_PROFILE_RSC_EXT] = {
        .name = "rsc-ext",
        .merge_flags = TCP_FLAG_ACK | TCP_FLAG_PSH | RSC_TCP_FLAG_ECN,
        .ack_advances = true,
        .window_changes = true,
        .ts_advances = true,
        .ttl_minimum = true,
        .window_updates = true,
        .rsc_info = true,
    },
    /* Linux's hardware GRO (NETIF_F_GRO_HW): GSO gives the segments back */
    [NET_RSC_PROFILE_GRO] = {
        .name = "gro",
        .merge_flags = TCP_FLAG_ACK | TCP_FLAG_PSH | TCP_FLAG_ECE,
        .ip_id_step = true,
        .ecn_alone = true,
        .psh_ends = true,
        .v6_ext = true,
        .exact = true,
    },
};

/* What rsc_parse() found out about a frame. */
typedef enum RscClass {
    RSC_CLASS_OTHER,        /* of no connection: deliver alone */
    RSC_CLASS_ADDRS,        /* of an address pair only: flush its units */
    RSC_CLASS_SEGMENT,      /* a TCP segment of a connection */
} RscClass;

/* RscSeg.bypass of a segment that may be merged */
#define RSC_MERGEABLE NET_RSC_BYPASS__MAX

/* Headers of one frame, extracted once by rsc_parse() (or rsc_fast()). */
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
    uint16_t urg;           /* urgent pointer */
    uint16_t ip_id;         /* IPv4 identification */
    uint16_t gso_size;      /* from the backend's vnet header */
    uint16_t hdr_len;       /* from the backend's vnet header */
    uint8_t vnet_flags;     /* from the backend's vnet header */
    uint8_t gso_type;       /* from the backend's vnet header */
    uint8_t bypass;         /* NetRscBypass, or RSC_MERGEABLE */
    uint8_t gso_tcp;        /* backend GSO of TCP over this IP version */
    uint8_t same_hdrs;      /* headers equal the unit's (rsc_same_hdrs()) */
    uint8_t v6;             /* 1: IPv6, 0: IPv4 */
    uint8_t iphl;           /* IP header bytes */
    uint8_t tcphl;          /* TCP header bytes */
    uint8_t ts_off;         /* TSval offset in the TCP header, 0: none */
    uint8_t tcp_flags;
    uint8_t ttl;            /* TTL or hop limit */
} RscSeg;

/* A frame as the backend gave it, with what travels with it. */
typedef struct RscFrame {
    const uint8_t *buf;     /* the backend's vnet header, then Ethernet */
    size_t size;            /* bytes in @buf */
    size_t vhl;             /* vnet header bytes */
    const NetRscRxInfo *info; /* RSS hash report, for the guest's header */
} RscFrame;

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
    uint16_t idx;           /* this entry's index in its table */
    uint16_t ip_id;         /* IPv4 ID of the latest segment */
    uint16_t ip_sum;        /* IPv4: rsc_ip4_fixed_sum() of the headers */
    uint8_t id_fixed;       /* the IPv4 ID stays (else it steps by one) */
    uint8_t v6;             /* key: IP version */
    uint8_t l234_len;       /* bytes in l234 */
    uint8_t iphl;           /* IP header bytes */
    uint8_t ts_off;         /* TSval offset in the TCP header, 0: none */
    uint8_t ecn_flags;      /* ECE and CWR of the first segment */
    uint8_t psh;            /* TCP_FLAG_PSH if any segment had it */
    uint8_t ttl;            /* minimum TTL or hop limit */
    uint8_t layout;         /* RSC_LAYOUT_*: which rsc_fast() mask */
    uint8_t l234[RSC_MAX_L234]; /* the first segment's headers */
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
    uint16_t last;          /* the same, if it took two in a row */
} RscQueue;

struct NetRscChain {
    const NetRscOps *ops;   /* access to the guest's buffers */
    void *opaque;           /* for @ops */
    const RscRules *rules;  /* the rule set in force */
    bool ipv4;              /* coalesce TCP over IPv4 */
    bool ipv6;              /* coalesce TCP over IPv6 */
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
 * Add the last @len (below 32) bytes at @p as host-order 16-bit words, a
 * lone last byte as the first byte of a zero-filled word.
 */
static inline uint64_t rsc_csum_tail(const uint8_t *p, size_t len)
{
    uint64_t sum = 0;
    uint16_t last = 0;

    for (; len >= 4; p += 4, len -= 4) {
        sum += (uint32_t)ldl_he_p(p);
    }
    if (len & 2) {
        sum += lduw_he_p(p);
        p += 2;
    }
    if (len & 1) {
        memcpy(&last, p, 1);
    }
    return sum + last;
}

/* @sum, host-order words, folded to the big-endian 16-bit sum */
static inline uint32_t rsc_csum_fold(uint64_t sum)
{
    sum = (sum & 0xffffffff) + (sum >> 32);
    sum = (sum & 0xffffffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return be16_to_cpu(sum);
}

#ifdef CONFIG_AVX2_OPT
/* The 16 words at @p added in pairs, each pair less 0x10000 (see below) */
static inline __m256i __attribute__((target("avx2")))
rsc_csum_avx2_pairs(const uint8_t *p)
{
    const __m256i flip = _mm256_set1_epi16(-0x8000);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i v = _mm256_loadu_si256((const __m256i *)p);

    return _mm256_madd_epi16(_mm256_xor_si256(v, flip), ones);
}

/*
 * rsc_csum() with AVX2, for 128 bytes or more: 32 bytes per step instead
 * of 16, about 2.5 times as fast on a 1448-byte segment.  VPMADDWD adds
 * pairs of signed 16-bit words into 32-bit lanes; flipping the top bit of
 * each word first (x ^ 0x8000 read as signed is x - 0x8000) makes each
 * pair 0x10000 short, added back for every 32-byte block (eight pairs) at
 * the end.  A lane moves by at most 2^16 per 32 bytes, 2^17 once the two
 * halves are added: below 2^30 in all for @len below 256 KiB.
 */
static uint32_t __attribute__((target("avx2")))
rsc_csum_avx2(const uint8_t *p, size_t len)
{
    __m256i acc = _mm256_setzero_si256();
    __m128i lanes;
    uint64_t sum = (uint64_t)(len / 32) << 19;

    for (; len >= 128; p += 128, len -= 128) {
        __m256i a = _mm256_add_epi32(rsc_csum_avx2_pairs(p),
                                     rsc_csum_avx2_pairs(p + 32));
        __m256i b = _mm256_add_epi32(rsc_csum_avx2_pairs(p + 64),
                                     rsc_csum_avx2_pairs(p + 96));

        acc = _mm256_add_epi32(acc, _mm256_add_epi32(a, b));
    }
    for (; len >= 32; p += 32, len -= 32) {
        acc = _mm256_add_epi32(acc, rsc_csum_avx2_pairs(p));
    }
    lanes = _mm_add_epi32(_mm256_castsi256_si128(acc),
                          _mm256_extracti128_si256(acc, 1));
    sum += (int64_t)_mm_extract_epi32(lanes, 0) +
           _mm_extract_epi32(lanes, 1) + _mm_extract_epi32(lanes, 2) +
           _mm_extract_epi32(lanes, 3);
    return rsc_csum_fold(sum + rsc_csum_tail(p, len));
}
#endif

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
    uint64_t sum = 0;
    unsigned i;

    assert(len < 256 * KiB);
#ifdef CONFIG_AVX2_OPT
    if (len >= 128 && (cpuinfo & CPUINFO_AVX2)) {
        return rsc_csum_avx2(p, len);
    }
#endif
    /*
     * 32 bytes at a time as 32-bit lanes, each lane summing its two 16-bit
     * halves: no lane overflows for @len below 256 KiB.
     */
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
    return rsc_csum_fold(sum + rsc_csum_tail(p, len));
}

/*
 * Whether @sum, 16-bit words of a header added in host order (below 2^48),
 * is 0xffff in one's complement: the header's checksum is valid (RFC 1071
 * allows either byte order for this test).
 */
static inline bool rsc_sum_valid(uint64_t sum)
{
    sum = (sum & 0xffff) + ((sum >> 16) & 0xffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    return sum == 0xffff;
}

/* Whether the option-less IPv4 header @ip has a valid checksum. */
static inline bool rsc_ip4_csum_ok(const uint8_t *ip)
{
    return rsc_sum_valid((uint64_t)(uint32_t)ldl_he_p(ip) +
                         (uint32_t)ldl_he_p(ip + 4) +
                         (uint32_t)ldl_he_p(ip + 8) +
                         (uint32_t)ldl_he_p(ip + 12) +
                         (uint32_t)ldl_he_p(ip + 16));
}

/*
 * The words of the option-less IPv4 header @ip that rsc_fast() proves
 * equal to the unit's (version to TOS, flags and fragment offset,
 * addresses), added and folded to 16 bits: with the words it reads (total
 * length, ID, TTL and protocol, checksum) they check the header.
 */
static uint16_t rsc_ip4_fixed_sum(const uint8_t *ip)
{
    uint64_t sum = (uint64_t)lduw_he_p(ip) + lduw_he_p(ip + 6) +
                   (uint32_t)ldl_he_p(ip + 12) +
                   (uint32_t)ldl_he_p(ip + 16);

    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return sum;
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
    return rsc_csum(addrs, v6 ? 32 : 8) + IP_PROTO_TCP + (tcp_len >> 16) +
           (tcp_len & 0xffff);
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
 * Skip the IPv6 extension headers that GRO merges when identical:
 * hop-by-hop (first only), destination options and routing headers with
 * no segment left (else the TCP checksum covers another destination), in
 * all at most RSC_MAX_V6_EXT bytes, within the payload length of @ip
 * (already checked to lie within @l3len).  Returns the next header that
 * ends the walk, and adds the bytes skipped to *@iphl.
 */
static uint8_t rsc_parse_v6_ext(const uint8_t *ip, size_t l3len,
                                uint8_t nh, uint8_t *iphl)
{
    size_t end = sizeof(struct ip6_header) + lduw_be_p(ip + 4);
    unsigned off = sizeof(struct ip6_header);

    assert(end <= l3len);
    while (nh == 0 || nh == 60 || nh == 43) {
        unsigned len;

        if (off + 8 > end || (nh == 0 && off != sizeof(struct ip6_header))) {
            break;
        }
        len = (ip[off + 1] + 1) * 8;
        if (off + len > end ||
            off + len - sizeof(struct ip6_header) > RSC_MAX_V6_EXT ||
            (nh == 43 && ip[off + 3] != 0)) {
            break;
        }
        nh = ip[off];
        off += len;
    }
    if (nh == IP_PROTO_TCP) {
        *iphl = off;
    }
    return nh;
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
 * The IPv4 header at @ip (@l3len bytes to the end of the frame) of the
 * frame of @s.  Returns RSC_CLASS_SEGMENT, with *@l4len the TCP bytes, if
 * a TCP header follows; else the class of the frame, @s->bypass its
 * reason.
 */
static RscClass rsc_parse_ip4(const NetRscChain *c, const uint8_t *ip,
                              size_t l3len, RscSeg *s, uint32_t *l4len)
{
    uint16_t frag;

    if (!c->ipv4) {
        s->bypass = NET_RSC_BYPASS_DISABLED;
        return RSC_CLASS_OTHER;
    }
    if (l3len < sizeof(struct ip_header)) {
        return RSC_CLASS_OTHER;
    }
    /* Readable addresses: keep the order of their connections. */
    s->addrs = ip + 12;
    if ((ip[0] >> 4) != 4 || (ip[0] & 0xf) < 5 ||
        lduw_be_p(ip + 2) > l3len ||
        lduw_be_p(ip + 2) < (ip[0] & 0xf) * 4) {
        return RSC_CLASS_ADDRS;
    }
    if (ip[9] != IP_PROTO_TCP) {
        s->bypass = NET_RSC_BYPASS_NOT_TCPIP;
        return RSC_CLASS_OTHER;
    }
    frag = lduw_be_p(ip + 6);
    if (frag & (IP_MF | IP_OFFMASK)) {
        s->bypass = NET_RSC_BYPASS_FRAGMENT;
        return RSC_CLASS_ADDRS;
    }
    if ((ip[0] & 0xf) != 5) {
        s->bypass = NET_RSC_BYPASS_IP_OPTIONS;
        return RSC_CLASS_ADDRS;
    }
    s->iphl = sizeof(struct ip_header);
    s->ipclass = ip[1] | (frag & IP_DF);
    s->ip_id = lduw_be_p(ip + 4);
    s->ttl = ip[8];
    *l4len = lduw_be_p(ip + 2) - s->iphl;
    return RSC_CLASS_SEGMENT;
}

/* The IPv6 header at @ip: as rsc_parse_ip4(). */
static RscClass rsc_parse_ip6(const NetRscChain *c, const uint8_t *ip,
                              size_t l3len, RscSeg *s, uint32_t *l4len)
{
    uint8_t proto;

    if (!c->ipv6) {
        s->bypass = NET_RSC_BYPASS_DISABLED;
        return RSC_CLASS_OTHER;
    }
    if (l3len < sizeof(struct ip6_header)) {
        return RSC_CLASS_OTHER;
    }
    s->v6 = 1;
    s->addrs = ip + 8;
    if ((ip[0] >> 4) != 6 ||
        lduw_be_p(ip + 4) > l3len - sizeof(struct ip6_header)) {
        return RSC_CLASS_ADDRS;
    }
    s->iphl = sizeof(struct ip6_header);
    proto = ip[6];
    if (c->rules->v6_ext) {
        proto = rsc_parse_v6_ext(ip, l3len, proto, &s->iphl);
    }
    if (proto != IP_PROTO_TCP) {
        if (!rsc_ipv6_ext_hdr(proto)) {
            s->bypass = NET_RSC_BYPASS_NOT_TCPIP;
            return RSC_CLASS_OTHER;
        }
        s->bypass = proto == 44 ? NET_RSC_BYPASS_FRAGMENT :
                                  NET_RSC_BYPASS_IP_OPTIONS;
        return RSC_CLASS_ADDRS;
    }
    s->ipclass = ldl_be_p(ip) & 0x0fffffff;
    s->ttl = ip[7];
    *l4len = lduw_be_p(ip + 4) - (s->iphl - sizeof(struct ip6_header));
    return RSC_CLASS_SEGMENT;
}

/*
 * The TCP header at @tcp, @l4len bytes of TCP segment, of the frame of
 * @s whose IP header rsc_parse_ip4/6() read.  Returns its class.
 */
static RscClass rsc_parse_tcp(const NetRscChain *c, const uint8_t *tcp,
                              uint32_t l4len, RscSeg *s)
{
    /* Data offset read byte-wise: the header may be unaligned. */
    if (l4len < sizeof(struct tcp_hdr) ||
        (tcp[12] >> 4) * 4 < sizeof(struct tcp_hdr) ||
        (tcp[12] >> 4) * 4 > l4len) {
        return RSC_CLASS_ADDRS;
    }
    s->tcphl = (tcp[12] >> 4) * 4;
    s->ports = ldl_he_p(tcp);
    s->hash = rsc_hash(s->addrs, s->v6, s->ports);
    s->seq = ldl_be_p(tcp + 4);
    s->ack = ldl_be_p(tcp + 8);
    s->tcp_flags = tcp[13];
    s->win = lduw_be_p(tcp + 14);
    s->urg = lduw_be_p(tcp + 18);
    s->payload = tcp + s->tcphl;
    s->payload_len = l4len - s->tcphl;

    /* From here on, the frame is a segment of a connection. */
    if (s->gso_type != VIRTIO_NET_HDR_GSO_NONE) {
        s->bypass = NET_RSC_BYPASS_BACKEND_GSO;
        s->gso_tcp = (s->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) ==
                     (s->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 :
                              VIRTIO_NET_HDR_GSO_TCPV4);
        return RSC_CLASS_SEGMENT;
    }
    if (!s->v6 && !rsc_ip4_csum_ok(s->l2 + ETH_HLEN)) {
        s->bypass = NET_RSC_BYPASS_CHECKSUM;
        return RSC_CLASS_SEGMENT;
    }
    if ((tcp[12] & 0x0f) || (s->tcp_flags & ~c->rules->merge_flags) ||
        !(s->tcp_flags & TCP_FLAG_ACK)) {
        s->bypass = NET_RSC_BYPASS_TCP_FLAGS;
        return RSC_CLASS_SEGMENT;
    }
    if (s->tcphl == 32 && ldl_be_p(tcp + 20) == RSC_TCPOPT_TS_ALIGNED) {
        /* NOP, NOP, timestamp: what Linux and Windows send */
        s->ts_off = 24;
    } else if (s->tcphl > 32 ||
               !rsc_parse_options(tcp, s->tcphl, &s->ts_off)) {
        s->bypass = NET_RSC_BYPASS_TCP_OPTIONS;
        return RSC_CLASS_SEGMENT;
    }
    if (s->ts_off) {
        s->tsval = ldl_be_p(tcp + s->ts_off);
        s->tsecr = ldl_be_p(tcp + s->ts_off + 4);
    }
    if (!(s->vnet_flags & (VIRTIO_NET_HDR_F_DATA_VALID |
                           VIRTIO_NET_HDR_F_NEEDS_CSUM)) &&
        net_checksum_finish(rsc_pseudo_sum(s->addrs, s->v6, l4len) +
                            rsc_csum(tcp, l4len))) {
        s->bypass = NET_RSC_BYPASS_CHECKSUM;
        return RSC_CLASS_SEGMENT;
    }
    if (s->payload_len == 0 && (s->tcp_flags & TCP_FLAG_PSH)) {
        s->bypass = NET_RSC_BYPASS_PURE_ACK;
        return RSC_CLASS_SEGMENT;
    }
    s->bypass = RSC_MERGEABLE;
    return RSC_CLASS_SEGMENT;
}

/*
 * Extract the headers of the frame @fr into @s and classify it under the
 * chain's rules.  Never reads outside the frame.  @s->bypass says why the
 * frame is not merged, or is RSC_MERGEABLE.  @s->addrs is valid from
 * RSC_CLASS_ADDRS on, the connection key for RSC_CLASS_SEGMENT.
 */
static RscClass rsc_parse(const NetRscChain *c, const RscFrame *fr,
                          RscSeg *s)
{
    const uint8_t *ip;
    size_t l3len;
    uint32_t l4len = 0;
    RscClass class;

    memset(s, 0, sizeof(*s));
    s->bypass = NET_RSC_BYPASS_MALFORMED;
    if (fr->vhl > fr->size || fr->size - fr->vhl < ETH_HLEN) {
        return RSC_CLASS_OTHER;
    }
    if (fr->vhl >= sizeof(struct virtio_net_hdr)) {
        s->vnet_flags = fr->buf[0];
        s->gso_type = fr->buf[1];
        s->hdr_len = lduw_le_p(fr->buf + 2);
        s->gso_size = lduw_le_p(fr->buf + 4);
    }
    s->l2 = fr->buf + fr->vhl;
    l3len = fr->size - fr->vhl - ETH_HLEN;
    ip = s->l2 + ETH_HLEN;

    switch (lduw_be_p(s->l2 + 12)) {
    case ETH_P_IP:
        class = rsc_parse_ip4(c, ip, l3len, s, &l4len);
        break;
    case ETH_P_IPV6:
        class = rsc_parse_ip6(c, ip, l3len, s, &l4len);
        break;
    default:
        s->bypass = NET_RSC_BYPASS_NOT_TCPIP;
        return RSC_CLASS_OTHER;
    }
    if (class != RSC_CLASS_SEGMENT) {
        return class;
    }
    class = rsc_parse_tcp(c, ip + s->iphl, l4len, s);
    if (c->rules->exact && s->bypass == RSC_MERGEABLE) {
        if (s->payload_len && s->payload + s->payload_len < ip + l3len) {
            /* bytes after the IP datagram: GSO could not give them back */
            s->bypass = NET_RSC_BYPASS_TRAILER;
        } else if (!s->v6 && (lduw_be_p(ip + 6) & IP_RF)) {
            /* the reserved flag must be zero */
            s->bypass = NET_RSC_BYPASS_MALFORMED;
        }
    }
    return class;
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

/* The flow of the connection of @s on @q, or NULL. */
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

/* Take a free entry of @q for a unit with key hash @hash: the newest. */
static RscFlow *rsc_link(NetRscChain *c, RscQueue *q, uint32_t hash)
{
    uint16_t idx = q->free;
    uint16_t *bucket = &q->buckets[hash & c->bucket_mask];
    RscFlow *f = &q->flows[idx];

    q->free = f->hnext;
    q->held++;
    f->hash = hash;
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
    return f;
}

/* Undo rsc_link(): unlink @f from its bucket and the age list, free it. */
static void rsc_unlink(NetRscChain *c, RscQueue *q, RscFlow *f)
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
 * Whether the headers of @s equal those of the unit of @f where every rule
 * set wants them equal: MAC addresses, TOS and DF (IPv6: class and flow
 * label), ECE and CWR, header lengths, IPv6 extension headers and their
 * types, and the TCP option bytes but timestamp values.
 * The connection key is equal already (rsc_lookup()).
 */
static bool rsc_same_hdrs(const RscFlow *f, const RscSeg *s)
{
    const uint8_t *opt = s->l2 + ETH_HLEN + s->iphl;
    const uint8_t *fopt = f->l234 + ETH_HLEN + f->iphl;
    unsigned ts = s->ts_off ? s->ts_off : s->tcphl;
    unsigned after = s->ts_off ? s->ts_off + 8 : s->tcphl;
    const unsigned base = sizeof(struct tcp_hdr);

    unsigned fixed = s->v6 ? sizeof(struct ip6_header) :
                             sizeof(struct ip_header);

    return !memcmp(s->l2, f->l234, 2 * ETH_ALEN) &&
           s->ipclass == f->ipclass &&
           (s->tcp_flags & RSC_TCP_FLAG_ECN) == f->ecn_flags &&
           s->iphl == f->iphl &&
           /* IPv6: the same extension header bytes under another type */
           (!s->v6 || s->l2[ETH_HLEN + 6] == f->l234[ETH_HLEN + 6]) &&
           !memcmp(s->l2 + ETH_HLEN + fixed, f->l234 + ETH_HLEN + fixed,
                   s->iphl - fixed) &&
           ETH_HLEN + s->iphl + s->tcphl == f->l234_len &&
           s->ts_off == f->ts_off &&
           !memcmp(opt + base, fopt + base, ts - base) &&
           !memcmp(opt + after, fopt + after, s->tcphl - after);
}

/* What to do with a segment: rsc_decide()'s verdict. */
typedef enum RscVerdict {
    RSC_MERGE,              /* the segment joins the unit */
    RSC_MERGE_FLUSH,        /* it joins as the unit's last: flush after */
    RSC_ABSORB,             /* window update: the unit takes the window */
    RSC_START,              /* no unit: the segment starts one */
    RSC_FLUSH_START,        /* flush the unit, the segment starts one */
    RSC_ALONE,              /* no unit: deliver the segment alone */
    RSC_FLUSH_ALONE,        /* flush the unit, deliver the segment alone */
} RscVerdict;

/* Why: the flush cause of a flush, the bypass reason of a lone delivery. */
typedef struct RscCause {
    NetRscFlushCause flush;
    NetRscBypass bypass;
} RscCause;

/*
 * Whether the segment @s continues the unit of @f in everything that
 * pure ACKs and data segments alike must keep, under the rules @r.
 */
static inline QEMU_ALWAYS_INLINE bool rsc_continues(const RscRules *r,
                                                   const RscFlow *f,
                                                   const RscSeg *s)
{
    if (!s->same_hdrs || s->seq != f->next_seq) {
        return false;
    }
    if (r->ts_advances ? f->ts_off && (int32_t)(s->tsval - f->tsval) < 0 :
                         s->tsval != f->tsval || s->tsecr != f->tsecr) {
        return false;
    }
    if (!r->ttl_minimum && s->ttl != f->ttl) {
        return false;
    }
    if (r->exact && s->urg != lduw_be_p(f->l234 + ETH_HLEN + f->iphl + 18)) {
        return false;
    }
    if (r->ip_id_step && !f->v6) {
        bool step = s->ip_id == (uint16_t)(f->ip_id + 1);
        bool fixed = s->ip_id == f->ip_id && (f->ipclass & IP_DF);

        return f->segs == 1 ? step || fixed : f->id_fixed ? fixed : step;
    }
    return true;
}

/*
 * The merge decision, for every segment of a connection: compare @s with
 * the unit of @f (NULL: none held) under the rules @r, the way Linux's
 * tcp_gro_receive() gathers everything that forbids a merge into one
 * flush.  Returns the verdict and fills *@cause.  Changes nothing.
 */
static inline QEMU_ALWAYS_INLINE RscVerdict rsc_decide(const RscRules *r,
                                                       const RscFlow *f,
                                                       const RscSeg *s,
                                                       RscCause *cause)
{
    bool pushed = r->psh_ends && (s->tcp_flags & TCP_FLAG_PSH);

    cause->flush = NET_RSC_FLUSH_EXCEPTION;
    cause->bypass = s->bypass;
    if (s->bypass != RSC_MERGEABLE) {
        return f ? RSC_FLUSH_ALONE : RSC_ALONE;
    }
    if (!s->payload_len) {
        cause->bypass = NET_RSC_BYPASS_PURE_ACK;
    } else if (pushed) {
        cause->bypass = NET_RSC_BYPASS_PUSH;
    }
    if (!f) {
        return s->payload_len && !pushed ? RSC_START : RSC_ALONE;
    }

    if (!s->payload_len) {
        /* a window update, a duplicate ACK or any other pure ACK */
        if (!r->window_updates || !rsc_continues(r, f, s) ||
            s->ack != f->ack) {
            return RSC_FLUSH_ALONE;
        }
        if (s->win == f->win) {
            cause->bypass = NET_RSC_BYPASS_DUP_ACK;
            return RSC_FLUSH_ALONE;
        }
        return f->segs > 1 ? RSC_ABSORB : RSC_FLUSH_ALONE;
    }

    if (r->ecn_alone &&
        (s->tcp_flags & RSC_TCP_FLAG_ECN) != f->ecn_flags) {
        cause->bypass = NET_RSC_BYPASS_TCP_FLAGS;
        return RSC_FLUSH_ALONE;
    }
    if (!rsc_continues(r, f, s) || s->payload_len > f->mss ||
        (r->ack_advances ? (int32_t)(s->ack - f->ack) < 0 :
                           s->ack != f->ack) ||
        (!r->window_changes && s->win != f->win)) {
        return pushed ? RSC_FLUSH_ALONE : RSC_FLUSH_START;
    }
    /*
     * Every segment brings a byte at least, so the frame limit also keeps
     * the segment count within 16 bits.
     */
    QEMU_BUILD_BUG_ON(NET_RSC_MAX_FRAME - ETH_HLEN - sizeof(struct ip_header) -
                      sizeof(struct tcp_hdr) >= UINT16_MAX);
    if (f->l234_len + f->payload + s->payload_len > NET_RSC_MAX_FRAME) {
        cause->flush = NET_RSC_FLUSH_FULL;
        return pushed ? RSC_FLUSH_ALONE : RSC_FLUSH_START;
    }
    if (unlikely(s->payload_len < f->mss)) {
        cause->flush = NET_RSC_FLUSH_SHORT;
        return RSC_MERGE_FLUSH;
    }
    if (pushed) {
        cause->flush = NET_RSC_FLUSH_PUSH;
        return RSC_MERGE_FLUSH;
    }
    return RSC_MERGE;
}

/*
 * Patch the headers saved in @f into those of the coalesced packet and
 * fill @hdr, under the rules @r.  Called once per unit of two or more
 * segments, at flush.
 */
static void rsc_finalise(const RscRules *r, RscFlow *f, NetRscVnetHdr *hdr)
{
    uint8_t *ip = f->l234 + ETH_HLEN;
    uint8_t *tcp = ip + f->iphl;
    uint32_t tcp_len = f->l234_len - ETH_HLEN - f->iphl + f->payload;

    if (f->v6) {
        stw_be_p(ip + 4, f->iphl - sizeof(struct ip6_header) + tcp_len);
        ip[7] = f->ttl;
    } else {
        stw_be_p(ip + 2, f->iphl + tcp_len);
        ip[8] = f->ttl;
        stw_be_p(ip + 10, 0);
        stw_be_p(ip + 10, net_checksum_finish(rsc_csum(ip, f->iphl)));
    }
    stl_be_p(tcp + 8, f->ack);
    tcp[13] |= f->psh;
    stw_be_p(tcp + 14, f->win);
    if (f->ts_off) {
        stl_be_p(tcp + f->ts_off, f->tsval);
        stl_be_p(tcp + f->ts_off + 4, f->tsecr);
    }
    stw_be_p(tcp + RSC_TCP_CSUM_OFF,
             rsc_fold(rsc_pseudo_sum(ip + (f->v6 ? 8 : 12), f->v6, tcp_len)));

    hdr->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    hdr->gso_type = f->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 :
                            VIRTIO_NET_HDR_GSO_TCPV4;
    hdr->hdr_len = f->l234_len;
    hdr->gso_size = f->mss;
    if (r->rsc_info) {
        /* segments coalesced, and no duplicate ACK ever is */
        hdr->flags |= VIRTIO_NET_HDR_F_RSC_INFO;
        hdr->csum_start = f->segs;
        hdr->csum_offset = 0;
    } else {
        hdr->csum_start = ETH_HLEN + f->iphl;
        hdr->csum_offset = RSC_TCP_CSUM_OFF;
    }
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
        rsc_unlink(c, q, f);
        c->ops->unit_end(c->opaque, unit, NULL, NULL, 0, f->frame_len);
    } else {
        NetRscVnetHdr hdr;

        rsc_finalise(c->rules, f, &hdr);
        c->stats[RSC_STAT_UNITS]++;
        rsc_unlink(c, q, f);
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
 * Deliver the frame @fr alone, for the reason @why.  A large packet from
 * the backend gets its segment count when the rules report one.  Returns
 * as NetRscOps.deliver does: 0 if the guest had no buffer.
 */
static ssize_t rsc_deliver(NetRscChain *c, unsigned qi, const RscFrame *fr,
                           const RscSeg *s, NetRscBypass why)
{
    NetRscVnetHdr gso, *hdr = NULL;
    ssize_t ret;

    if (why == NET_RSC_BYPASS_BACKEND_GSO && s->gso_tcp &&
        c->rules->rsc_info) {
        gso = (NetRscVnetHdr) {
            .flags = s->vnet_flags | VIRTIO_NET_HDR_F_RSC_INFO,
            .gso_type = s->gso_type,
            .hdr_len = s->hdr_len,
            .gso_size = s->gso_size,
            .csum_start = s->gso_size ?
                MIN(DIV_ROUND_UP(s->payload_len, s->gso_size), UINT16_MAX) :
                1,
        };
        hdr = &gso;
    }
    ret = c->ops->deliver(c->opaque, qi, fr->buf, fr->size, hdr, fr->info);
    if (ret != 0) {
        trace_virtio_net_rsc_bypass(qi, rsc_bypass_names[why], fr->size);
        c->bypass[why]++;
        c->stats[RSC_STAT_UNCOALESCED]++;
    }
    return ret;
}

/*
 * Start a unit on @qi with the data segment @s of @fr; a flow entry must
 * be free.  Returns as NetRscOps.deliver does.
 */
static ssize_t rsc_start(NetRscChain *c, unsigned qi, const RscSeg *s,
                         const RscFrame *fr)
{
    RscQueue *q = &c->queues[qi];
    size_t frame_len = fr->size - fr->vhl;
    RscFlow *f;
    void *unit;

    switch (c->ops->unit_begin(c->opaque, qi, fr->buf, fr->size,
                               ETH_HLEN + s->iphl + s->tcphl + s->payload_len,
                               fr->info, &unit)) {
    case NET_RSC_BEGIN_OK:
        break;
    case NET_RSC_BEGIN_NO_BUFFER:
        return 0;
    default:
        return rsc_deliver(c, qi, fr, s, NET_RSC_BYPASS_NO_UNIT);
    }

    f = rsc_link(c, q, s->hash);
    f->v6 = s->v6;
    f->next_seq = s->seq + s->payload_len;
    f->ack = s->ack;
    f->tsval = s->tsval;
    f->tsecr = s->tsecr;
    f->ipclass = s->ipclass;
    f->payload = s->payload_len;
    f->frame_len = frame_len;
    f->start_ns = c->ops->now(c->opaque);
    f->unit = unit;
    f->win = s->win;
    f->mss = s->payload_len;
    f->segs = 1;
    f->ip_id = s->ip_id;
    f->ip_sum = s->v6 ? 0 : rsc_ip4_fixed_sum(s->l2 + ETH_HLEN);
    f->id_fixed = 0;
    f->l234_len = ETH_HLEN + s->iphl + s->tcphl;
    f->iphl = s->iphl;
    f->ts_off = s->ts_off;
    f->ecn_flags = s->tcp_flags & RSC_TCP_FLAG_ECN;
    f->psh = 0;
    f->ttl = s->ttl;
    if (s->v6 && s->iphl != sizeof(struct ip6_header)) {
        f->layout = RSC_LAYOUT_NONE;
    } else if (s->tcphl == sizeof(struct tcp_hdr)) {
        f->layout = s->v6 ? RSC_LAYOUT_V6 : RSC_LAYOUT_V4;
    } else if (s->tcphl == 32 && s->ts_off == 24) {
        f->layout = s->v6 ? RSC_LAYOUT_V6_TS : RSC_LAYOUT_V4_TS;
    } else {
        f->layout = RSC_LAYOUT_NONE;
    }
    if (frame_len >= sizeof(f->l234)) {
        /* a fixed size copies faster; the bytes past l234_len are unused */
        memcpy(f->l234, s->l2, sizeof(f->l234));
    } else {
        memcpy(f->l234, s->l2, f->l234_len);
    }
    trace_virtio_net_rsc_unit_start(qi, c->rules->name, s->seq,
                                    s->payload_len);
    return fr->size;
}

/*
 * Carry out RSC_MERGE or RSC_MERGE_FLUSH (then flushing for @cause): add
 * the data segment @s to the unit of @f, under the rules @r.  Returns
 * false, with nothing changed, if the guest buffers cannot hold it.
 */
static inline QEMU_ALWAYS_INLINE bool rsc_merge(NetRscChain *c,
                                                const RscRules *r,
                                                unsigned qi, RscFlow *f,
                                                const RscSeg *s, RscVerdict v,
                                                NetRscFlushCause cause)
{
    RscQueue *q = &c->queues[qi];
    uint16_t idx = f->idx;

    if (!c->ops->unit_write(c->opaque, f->unit, f->l234_len + f->payload,
                            s->payload, s->payload_len)) {
        return false;
    }
    f->payload += s->payload_len;
    f->next_seq += s->payload_len;
    f->ack = s->ack;
    f->win = s->win;
    f->tsval = s->tsval;
    f->tsecr = s->tsecr;
    f->psh |= s->tcp_flags & TCP_FLAG_PSH;
    if (r->ttl_minimum) {
        f->ttl = MIN(f->ttl, s->ttl);
    }
    if (r->ip_id_step) {
        f->id_fixed = s->ip_id == f->ip_id;
        f->ip_id = s->ip_id;
    }
    f->segs++;
    c->stats[RSC_STAT_MERGED]++;
    if (trace_event_get_state_backends(TRACE_VIRTIO_NET_RSC_MERGE)) {
        /* out of line: the check alone is what every merge pays */
        trace_virtio_net_rsc_merge(qi, s->seq, s->payload_len, f->segs);
    }
    /* a run of one connection: rsc_fast() needs no lookup */
    if (likely(q->prev == idx)) {
        q->last = idx;
    } else {
        q->prev = idx;
        q->last = RSC_NIL;
    }
    if (unlikely(v == RSC_MERGE_FLUSH)) {
        rsc_flush(c, qi, f, cause);
    }
    return true;
}

/*
 * Carry out the verdict @v of rsc_decide() for the segment @s of @fr and
 * the flow @f (NULL if none).  Returns as NetRscOps.deliver does.
 */
static ssize_t rsc_act(NetRscChain *c, unsigned qi, RscFlow *f,
                       const RscSeg *s, const RscFrame *fr, RscVerdict v,
                       RscCause cause)
{
    RscQueue *q = &c->queues[qi];

    switch (v) {
    case RSC_MERGE:
    case RSC_MERGE_FLUSH:
        if (rsc_merge(c, c->rules, qi, f, s, v, cause.flush)) {
            return fr->size;
        }
        /* the guest's buffers cannot take more: the unit is full */
        cause.flush = NET_RSC_FLUSH_FULL;
        if (cause.bypass == NET_RSC_BYPASS_PUSH) {
            /* a pushed segment cannot start a unit (GRO rules) */
            rsc_flush(c, qi, f, cause.flush);
            return rsc_deliver(c, qi, fr, s, cause.bypass);
        }
        /* fall through */
    case RSC_FLUSH_START:
        rsc_flush(c, qi, f, cause.flush);
        /* fall through */
    case RSC_START:
        if (q->free == RSC_NIL) {
            rsc_flush(c, qi, &q->flows[q->oldest], NET_RSC_FLUSH_EVICT);
        }
        return rsc_start(c, qi, s, fr);
    case RSC_ABSORB:
        f->win = s->win;
        f->tsval = s->tsval;
        f->tsecr = s->tsecr;
        f->ttl = MIN(f->ttl, s->ttl);
        c->stats[RSC_STAT_WINDOW_UPDATES]++;
        return fr->size;
    case RSC_FLUSH_ALONE:
        rsc_flush(c, qi, f, cause.flush);
        /* fall through */
    case RSC_ALONE:
        return rsc_deliver(c, qi, fr, s, cause.bypass);
    }
    g_assert_not_reached();
}

/*
 * Account for a frame of @size bytes that the engine answered with @ret:
 * count it, or, if the guest had no buffer (@ret 0), deliver the queue's
 * units so that the guest can refill, and the backend retries.  Returns
 * @ret.
 */
static inline QEMU_ALWAYS_INLINE ssize_t rsc_account(NetRscChain *c,
                                                    unsigned qi, size_t size,
                                                    ssize_t ret)
{
    if (likely(ret > 0)) {
        c->stats[RSC_STAT_SEGMENTS]++;
    } else if (ret == 0) {
        trace_virtio_net_rsc_not_accepted(qi, size);
        c->stats[RSC_STAT_NOT_ACCEPTED]++;
        virtio_net_rsc_flush_queue(c, qi, NET_RSC_FLUSH_NO_BUFFER);
    }
    return ret;
}

/*
 * The full path: parse, look up, decide, act.  Arguments and return as
 * virtio_net_rsc_receive().
 */
static G_GNUC_NO_INLINE ssize_t rsc_receive(NetRscChain *c, unsigned qi,
                                            const uint8_t *buf, size_t size,
                                            size_t vhl,
                                            const NetRscRxInfo *info)
{
    static const NetRscRxInfo no_info;
    const RscFrame fr = {
        .buf = buf,
        .size = size,
        .vhl = vhl,
        .info = info ? info : &no_info,
    };
    RscQueue *q = &c->queues[qi];
    RscCause cause;
    ssize_t ret;
    RscFlow *f;
    RscSeg s;

    switch (rsc_parse(c, &fr, &s)) {
    case RSC_CLASS_SEGMENT:
        f = rsc_lookup(c, q, &s);
        s.same_hdrs = f && rsc_same_hdrs(f, &s);
        ret = rsc_act(c, qi, f, &s, &fr, rsc_decide(c->rules, f, &s, &cause),
                      cause);
        break;
    case RSC_CLASS_ADDRS:
        rsc_flush_addrs(c, qi, &s);
        /* fall through */
    default:
        ret = rsc_deliver(c, qi, &fr, &s, s.bypass);
    }
    return rsc_account(c, qi, size, ret);
}

/* The bits of the 64-bit words at @off of @a and @b that differ in @mask. */
static inline uint64_t rsc_masked_diff(const uint8_t *a, const uint8_t *b,
                                       const uint8_t *mask, unsigned off)
{
    return (ldq_he_p(a + off) ^ ldq_he_p(b + off)) & ldq_he_p(mask + off);
}

/*
 * Whether the RSC_L234_WORDS words of headers at @l2 and @l234 are equal
 * where @mask has bits set.
 */
static inline bool rsc_fast_same(const uint8_t *l2, const uint8_t *l234,
                                 const uint8_t *mask)
{
    QEMU_BUILD_BUG_ON(RSC_L234_WORDS != 11);
    /* addresses and (IPv4) ports first: another connection fails fast */
    if (rsc_masked_diff(l2, l234, mask, 24) |
        rsc_masked_diff(l2, l234, mask, 32)) {
        return false;
    }
    return !(rsc_masked_diff(l2, l234, mask, 0) |
             rsc_masked_diff(l2, l234, mask, 8) |
             rsc_masked_diff(l2, l234, mask, 16) |
             rsc_masked_diff(l2, l234, mask, 40) |
             rsc_masked_diff(l2, l234, mask, 48) |
             rsc_masked_diff(l2, l234, mask, 56) |
             rsc_masked_diff(l2, l234, mask, 64) |
             rsc_masked_diff(l2, l234, mask, 72) |
             rsc_masked_diff(l2, l234, mask, 80));
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
 * The shortcut for a data segment that continues a unit with the same
 * header layout, under the rules @r.  Its headers must equal those of the
 * unit's first segment (which passed every check of rsc_parse()) except
 * for the fields the mask leaves out; those fields, the lengths and the
 * checksums are read here, and rsc_decide() judges them as it judges
 * every segment.  Anything else goes to rsc_receive(), which decides as
 * if this had not been tried.
 */
static inline QEMU_ALWAYS_INLINE ssize_t
rsc_fast(NetRscChain *c, unsigned qi, const uint8_t *buf, size_t size,
               size_t vhl, const NetRscRxInfo *info, const RscRules *r)
{
    RscQueue *q = &c->queues[qi];
    const uint8_t *l2, *ip, *tcp;
    uint32_t l4len, tcphl;
    bool csum_ok = false;
    RscCause cause;
    RscVerdict v;
    RscFlow *f;
    /*
     * Every field rsc_decide() and rsc_merge() read is set below: left
     * uninitialised so that the compiler can keep it in registers.
     */
    QEMU_UNINITIALIZED RscSeg s;

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
    if (!rsc_fast_same(l2, f->l234, c->masks[f->layout])) {
        goto slow;
    }
    ip = l2 + ETH_HLEN;
    if (f->v6) {
        l4len = lduw_be_p(ip + 4);
        if (!c->ipv6 || l4len > size - vhl - ETH_HLEN - f->iphl ||
            (r->exact && l4len != size - vhl - ETH_HLEN - f->iphl)) {
            goto slow;
        }
        s.ttl = ip[7];
        s.ip_id = 0;
    } else {
        l4len = lduw_be_p(ip + 2) - f->iphl;
        if (!c->ipv4 || lduw_be_p(ip + 2) > size - vhl - ETH_HLEN ||
            (r->exact && lduw_be_p(ip + 2) != size - vhl - ETH_HLEN) ||
            !rsc_sum_valid(f->ip_sum + (uint64_t)(uint32_t)ldl_he_p(ip + 2) +
                           (uint32_t)ldl_he_p(ip + 8))) {
            goto slow;
        }
        s.ttl = ip[8];
        s.ip_id = lduw_be_p(ip + 4);
    }
    tcp = ip + f->iphl;
    tcphl = f->l234_len - ETH_HLEN - f->iphl;
    /* no payload (or a length shorter than the headers): not for here */
    if ((int32_t)l4len <= (int32_t)tcphl ||
        (!csum_ok &&
         net_checksum_finish(rsc_pseudo_sum(ip + (f->v6 ? 8 : 12), f->v6,
                                            l4len) +
                             rsc_csum(tcp, l4len)))) {
        goto slow;
    }
    s.bypass = RSC_MERGEABLE;
    s.same_hdrs = 1;
    s.payload = tcp + tcphl;
    s.payload_len = l4len - tcphl;
    s.seq = ldl_be_p(tcp + 4);
    s.ack = ldl_be_p(tcp + 8);
    s.tcp_flags = tcp[13];
    s.win = lduw_be_p(tcp + 14);
    s.urg = lduw_be_p(tcp + 18);
    s.tsval = f->ts_off ? ldl_be_p(tcp + f->ts_off) : 0;
    s.tsecr = f->ts_off ? ldl_be_p(tcp + f->ts_off + 4) : 0;
    v = rsc_decide(r, f, &s, &cause);
    if ((v == RSC_MERGE || v == RSC_MERGE_FLUSH) &&
        rsc_merge(c, r, qi, f, &s, v, cause.flush)) {
        return rsc_account(c, qi, size, size);
    }

slow:
    return rsc_receive(c, qi, buf, size, vhl, info);
}

/*
 * The shortcut, made once per rule set so that the compiler folds the
 * rules into the checks.  Only tried when the queue holds units.
 */
static G_GNUC_NO_INLINE ssize_t rsc_fast_rsc_ext(NetRscChain *c, unsigned qi,
                                                  const uint8_t *buf,
                                                  size_t size, size_t vhl,
                                                  const NetRscRxInfo *info)
{
    return rsc_fast(c, qi, buf, size, vhl, info,
                          &rsc_rules[NET_RSC_PROFILE_RSC_EXT]);
}

static G_GNUC_NO_INLINE ssize_t rsc_fast_gro(NetRscChain *c, unsigned qi,
                                              const uint8_t *buf, size_t size,
                                              size_t vhl,
                                              const NetRscRxInfo *info)
{
    return rsc_fast(c, qi, buf, size, vhl, info,
                          &rsc_rules[NET_RSC_PROFILE_GRO]);
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
                               size_t vnet_hdr_len, const NetRscRxInfo *info)
{
    assert(queue < chain->nqueues);
    if (!chain->queues[queue].held) {
        return rsc_receive(chain, queue, buf, size, vnet_hdr_len, info);
    }
    if (chain->rules == &rsc_rules[NET_RSC_PROFILE_GRO]) {
        return rsc_fast_gro(chain, queue, buf, size, vnet_hdr_len, info);
    }
    return rsc_fast_rsc_ext(chain, queue, buf, size, vnet_hdr_len, info);
}

void virtio_net_rsc_configure(NetRscChain *chain, NetRscProfile profile,
                              bool ipv4, bool ipv6)
{
    assert(profile < NET_RSC_PROFILE__MAX);
    assert(virtio_net_rsc_held(chain) == 0);
    chain->rules = &rsc_rules[profile];
    chain->ipv4 = ipv4;
    chain->ipv6 = ipv6;
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
    c->rules = &rsc_rules[NET_RSC_PROFILE_RSC_EXT];
    c->ipv4 = c->ipv6 = true;
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
            q->flows[j].idx = j;
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
