/**
 * The frames a new primary sends so that the network finds the guest at its new place: the
 * guest keeps its MAC address across a failover, so neighbours' ARP caches stay right, but the
 * switches (a Linux bridge, a real LAN) must learn the port behind which that MAC now lives.
 * QEMU announces a migrated guest with RARP frames from its MAC (qemu_announce_self); VMware FT
 * with a gratuitous ARP. We send both: the RARP always, the gratuitous ARP (RFC 5227, an ARP
 * request for the guest's own address) when the guest has used an IPv4 address.
 */

const broadcast = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
const ethertypeArp = 0x0806;
const ethertypeRarp = 0x8035;
/** Ethernet's minimum frame without its checksum: shorter frames are padded. */
const minimumFrameBytes = 60;

function arpFrame(ethertype: number, operation: number, mac: Uint8Array, senderIp: Uint8Array, targetMac: Uint8Array, targetIp: Uint8Array): Uint8Array {
  const frame = new Uint8Array(minimumFrameBytes);
  const view = new DataView(frame.buffer);
  frame.set(broadcast, 0);
  frame.set(mac, 6);
  view.setUint16(12, ethertype);
  view.setUint16(14, 1); // hardware type: Ethernet
  view.setUint16(16, 0x0800); // protocol type: IPv4
  frame[18] = 6;
  frame[19] = 4;
  view.setUint16(20, operation);
  frame.set(mac, 22);
  frame.set(senderIp, 28);
  frame.set(targetMac, 32);
  frame.set(targetIp, 38);
  return frame;
}

/** RARP "reverse request" (RFC 903, operation 3) from and about `mac`, as QEMU's announce sends. */
export function rarpAnnouncement(mac: Uint8Array): Uint8Array {
  const none = new Uint8Array(4);
  return arpFrame(ethertypeRarp, 3, mac, none, mac, none);
}

/** A gratuitous ARP request: who has `ipv4`? tell `ipv4` at `mac`. */
export function gratuitousArp(mac: Uint8Array, ipv4: Uint8Array): Uint8Array {
  return arpFrame(ethertypeArp, 1, mac, ipv4, new Uint8Array(6), ipv4);
}

export function announcementFrames(mac: Uint8Array, ipv4: Uint8Array | undefined): Uint8Array[] {
  return ipv4 === undefined ? [rarpAnnouncement(mac)] : [rarpAnnouncement(mac), gratuitousArp(mac, ipv4)];
}
