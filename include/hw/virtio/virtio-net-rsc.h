/*
 * virtio-net receive segment coalescing (RSC) engine
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The engine merges consecutive TCP segments of one connection into one
 * large packet (a "unit") before the guest sees it.  It knows nothing of
 * virtqueues: units are built in buffers that the caller provides through
 * NetRscOps, so that each payload byte is copied exactly once, straight
 * into guest memory.  The behaviour contract is in
 * docs/system/devices/virtio-net-rsc.rst.
 */

#ifndef HW_VIRTIO_NET_RSC_H
#define HW_VIRTIO_NET_RSC_H

/* Largest frame a coalesced unit may become (65535 + Ethernet header). */
#define NET_RSC_MAX_FRAME 65549

/* Default and limits of the flow table size per receive queue. */
#define NET_RSC_DEFAULT_MAX_FLOWS 64
#define NET_RSC_MAX_MAX_FLOWS 8192

typedef struct NetRscChain NetRscChain;

/* Why a unit was delivered to the guest. */
typedef enum NetRscFlushCause {
    NET_RSC_FLUSH_TIMER,        /* rsc_interval expired */
    NET_RSC_FLUSH_BURST,        /* end of a receive burst (rsc_interval=0) */
    NET_RSC_FLUSH_FULL,         /* next segment would exceed a size limit */
    NET_RSC_FLUSH_SHORT,        /* merged a segment shorter than the MSS */
    NET_RSC_FLUSH_EXCEPTION,    /* segment of the flow could not be merged */
    NET_RSC_FLUSH_EVICT,        /* flow table full, oldest unit made room */
    NET_RSC_FLUSH_NO_BUFFER,    /* guest ring empty, held units released */
    NET_RSC_FLUSH_OFFLOADS,     /* CTRL_GUEST_OFFLOADS_SET or features */
    NET_RSC_FLUSH_RESET,        /* device reset or driver not ready */
    NET_RSC_FLUSH_VM_STOP,      /* VM stopped (before migration saves) */
    NET_RSC_FLUSH_LINK_DOWN,    /* link went down */
    NET_RSC_FLUSH_PUSH,         /* merged a segment with PSH (GRO rules) */
    NET_RSC_FLUSH__MAX,
} NetRscFlushCause;

/* Why a frame was not considered for merging. */
typedef enum NetRscBypass {
    NET_RSC_BYPASS_NOT_TCPIP,   /* not Ethernet II + IPv4/IPv6 + TCP */
    NET_RSC_BYPASS_DISABLED,    /* RSC is off for this IP version */
    NET_RSC_BYPASS_MALFORMED,   /* truncated or inconsistent headers */
    NET_RSC_BYPASS_FRAGMENT,    /* IP fragment */
    NET_RSC_BYPASS_IP_OPTIONS,  /* IPv4 options or IPv6 extension headers */
    NET_RSC_BYPASS_CHECKSUM,    /* bad IPv4 header or TCP checksum */
    NET_RSC_BYPASS_TCP_FLAGS,   /* a flag other than ACK, PSH, ECE, CWR */
    NET_RSC_BYPASS_TCP_OPTIONS, /* a TCP option other than timestamps */
    NET_RSC_BYPASS_PURE_ACK,    /* no payload and not a window update */
    NET_RSC_BYPASS_DUP_ACK,     /* duplicate ACK of a held unit */
    NET_RSC_BYPASS_BACKEND_GSO, /* the backend delivered a large packet */
    NET_RSC_BYPASS_NO_UNIT,     /* guest buffers cannot hold a unit */
    NET_RSC_BYPASS_PUSH,        /* PSH with no unit to end (GRO rules) */
    NET_RSC_BYPASS_TRAILER,     /* bytes after the IP datagram (GRO rules) */
    NET_RSC_BYPASS__MAX,
} NetRscBypass;

/* The rule set that decides what may be merged, and how it is reported. */
typedef enum NetRscProfile {
    /*
     * Microsoft's RSC rules for guests that negotiated VIRTIO_NET_F_RSC_EXT
     * (Windows, netkvm): header with RSC_INFO and the segment count.
     */
    NET_RSC_PROFILE_RSC_EXT,
    /*
     * Linux hardware GRO rules for guests with GUEST_TSO4/6 but no RSC_EXT:
     * only what GSO turns back into the same segments, NEEDS_CSUM header.
     */
    NET_RSC_PROFILE_GRO,
    NET_RSC_PROFILE__MAX,
} NetRscProfile;

/*
 * What travels with a frame from the device, through the engine, to the
 * guest's header: the RSS hash report (VIRTIO_NET_F_HASH_REPORT).
 */
typedef struct NetRscRxInfo {
    uint32_t hash_value;    /* hash of the frame, as the device computed it */
    uint16_t hash_report;   /* VIRTIO_NET_HASH_REPORT_*, 0: none */
} NetRscRxInfo;

/*
 * The virtio-net header of a packet, in host byte order; the caller stores
 * it in the guest's byte order.
 */
typedef struct NetRscVnetHdr {
    uint8_t flags;          /* VIRTIO_NET_HDR_F_* */
    uint8_t gso_type;       /* VIRTIO_NET_HDR_GSO_* */
    uint16_t hdr_len;       /* Ethernet + IP + TCP header bytes */
    uint16_t gso_size;      /* MSS */
    uint16_t csum_start;    /* RSC_INFO: segments, else TCP header offset */
    uint16_t csum_offset;   /* RSC_INFO: duplicate ACKs, else 16 */
} NetRscVnetHdr;

/* Result of NetRscOps.unit_begin. */
typedef enum NetRscBegin {
    NET_RSC_BEGIN_OK,       /* unit started, frame copied in */
    NET_RSC_BEGIN_NO_BUFFER, /* guest has no buffer now: retry later */
    NET_RSC_BEGIN_CANNOT,   /* guest buffers cannot hold units: deliver */
} NetRscBegin;

/*
 * What the engine needs from the device.  @opaque is the pointer given to
 * virtio_net_rsc_new().  Frames passed in @buf start with the backend's
 * vnet header (vnet_hdr_len bytes, possibly 0), then the Ethernet header.
 */
typedef struct NetRscOps {
    /*
     * @unit_begin: take guest buffer(s) for a new unit on @queue and copy
     * the whole frame @buf/@size into them, exactly as a frame delivered
     * alone would be written.  Only the first @keep bytes of the frame
     * (headers and payload, no trailer) stay in the unit if it grows:
     * return NET_RSC_BEGIN_CANNOT if the buffers taken for the rest could
     * then not be handed back.  @info is the frame's hash report, for the
     * unit's header.  On NET_RSC_BEGIN_OK, *@unit is the handle.
     */
    NetRscBegin (*unit_begin)(void *opaque, unsigned queue,
                              const uint8_t *buf, size_t size, size_t keep,
                              const NetRscRxInfo *info, void **unit);
    /*
     * @unit_write: copy @len bytes of @data to frame offset @offset
     * (0 = first byte of the Ethernet header) of @unit, taking more guest
     * buffers if needed.  Returns false, with nothing of the unit's
     * existing content changed, when the guest buffers cannot hold them.
     */
    bool (*unit_write)(void *opaque, void *unit, size_t offset,
                       const void *data, size_t len);
    /*
     * @unit_end: complete @unit and hand it to the guest.  With @hdr NULL
     * the unit goes out exactly as begun, @frame_len bytes.  Otherwise
     * @hdr is its virtio-net header, the first @l234_len bytes of the
     * frame are replaced by @l234 and the frame is @frame_len bytes.
     * Cannot fail: the buffers were taken when the data was accepted.
     */
    void (*unit_end)(void *opaque, void *unit, const NetRscVnetHdr *hdr,
                     const uint8_t *l234, size_t l234_len, size_t frame_len);
    /*
     * @deliver: deliver @buf/@size alone on @queue as virtio-net does
     * without RSC; if @hdr is not NULL it replaces the backend's vnet
     * header; @info is the frame's hash report.  Returns @size when
     * delivered (or dropped by the device's own rules), 0 when the guest
     * has no buffer (retry later).
     */
    ssize_t (*deliver)(void *opaque, unsigned queue, const uint8_t *buf,
                       size_t size, const NetRscVnetHdr *hdr,
                       const NetRscRxInfo *info);
    /*
     * @now: the current virtual clock time in ns.  Asked only when a unit
     * starts, not for every segment.
     */
    int64_t (*now)(void *opaque);
} NetRscOps;

/**
 * virtio_net_rsc_new: create the RSC state of one device
 *
 * @ops: how to reach the guest's receive buffers
 * @opaque: passed to every @ops call
 * @queues: number of receive queues
 * @max_flows: units held at most per receive queue (1..NET_RSC_MAX_MAX_FLOWS)
 * @interval_ns: a unit is delivered at most this long after its first
 *               segment arrived; 0 means the caller flushes at the end of
 *               each receive burst
 *
 * The chain starts with NET_RSC_PROFILE_RSC_EXT for IPv4 and IPv6.
 *
 * Returns: the new chain; memory is allocated only here.
 */
NetRscChain *virtio_net_rsc_new(const NetRscOps *ops, void *opaque,
                                unsigned queues, unsigned max_flows,
                                uint64_t interval_ns);

/**
 * virtio_net_rsc_delete: free the chain; units must have been flushed
 *
 * @chain: the chain, or NULL
 */
void virtio_net_rsc_delete(NetRscChain *chain);

/**
 * virtio_net_rsc_receive: offer one frame from the backend
 *
 * @chain: the chain
 * @queue: receive queue the frame was steered to
 * @buf: the frame, starting with the backend's vnet header
 * @size: bytes in @buf
 * @vnet_hdr_len: bytes of backend vnet header at the start of @buf
 * @info: what the guest's header of this frame carries besides the
 *        backend's (hash report), or NULL for nothing
 *
 * The frame is merged into a unit, starts a unit, or is delivered alone
 * (after the unit of its connection, if any).
 *
 * Returns: @size when the frame was accepted; 0 when it was not (the
 * guest has no buffer): nothing of it was kept and the caller must offer
 * it again later.
 */
ssize_t virtio_net_rsc_receive(NetRscChain *chain, unsigned queue,
                               const uint8_t *buf, size_t size,
                               size_t vnet_hdr_len, const NetRscRxInfo *info);

/**
 * virtio_net_rsc_configure: choose the rules and the IP versions
 *
 * @chain: the chain; it must hold no unit (flush first)
 * @profile: the rule set
 * @ipv4: coalesce TCP over IPv4
 * @ipv6: coalesce TCP over IPv6
 */
void virtio_net_rsc_configure(NetRscChain *chain, NetRscProfile profile,
                              bool ipv4, bool ipv6);

/**
 * virtio_net_rsc_flush_queue: deliver every unit held on one queue
 *
 * @chain: the chain
 * @queue: the receive queue
 * @cause: counted and traced
 */
void virtio_net_rsc_flush_queue(NetRscChain *chain, unsigned queue,
                                NetRscFlushCause cause);

/**
 * virtio_net_rsc_flush_all: deliver every unit held on every queue
 *
 * @chain: the chain, or NULL
 * @cause: counted and traced
 */
void virtio_net_rsc_flush_all(NetRscChain *chain, NetRscFlushCause cause);

/**
 * virtio_net_rsc_expire: deliver the units of @queue that are due
 *
 * @chain: the chain
 * @queue: the receive queue
 * @now_ns: current virtual clock time
 *
 * Returns: the time the next held unit falls due, or -1 if none is held.
 */
int64_t virtio_net_rsc_expire(NetRscChain *chain, unsigned queue,
                              int64_t now_ns);

/**
 * virtio_net_rsc_deadline: when the oldest unit of @queue falls due
 *
 * @chain: the chain
 * @queue: the receive queue
 *
 * Returns: the virtual clock time, or -1 if @queue holds no unit.
 */
int64_t virtio_net_rsc_deadline(NetRscChain *chain, unsigned queue);

/**
 * virtio_net_rsc_held: count the units held on all queues
 *
 * @chain: the chain, or NULL
 *
 * Returns: the number of units not yet delivered.
 */
unsigned virtio_net_rsc_held(NetRscChain *chain);

/**
 * virtio_net_rsc_stats_foreach: report every counter
 *
 * @chain: the chain, or NULL (every counter reads 0)
 * @fn: called with each counter's name (lower case, hyphens) and value
 * @opaque: passed to @fn
 */
void virtio_net_rsc_stats_foreach(NetRscChain *chain,
                                  void (*fn)(const char *name,
                                             uint64_t value,
                                             void *opaque),
                                  void *opaque);

#endif
