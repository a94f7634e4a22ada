/**
 * Ethernet frames on a byte stream, each after its length as a 32-bit big-endian number: the
 * framing of QEMU's `-netdev stream` and of passt's UNIX socket, used here for every back-end
 * (passt, the TAP relay, `pair`'s switch), so that a frame keeps its boundaries end to end.
 */

export const frameLengthBytes = 4;
/**
 * The longest frame a back-end may send: passt's own limit (65520-byte MTU plus an Ethernet
 * header). A longer length means the stream is not what we think it is: it is closed. Frames
 * between the NIC's limit and this one are skipped, one by one.
 */
export const streamFrameBytesMax = 65_536;

export function encodeFrame(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(frameLengthBytes + frame.length);
  new DataView(out.buffer).setUint32(0, frame.length);
  out.set(frame, frameLengthBytes);
  return out;
}

export class FrameStreamError extends Error {
  override readonly name = 'FrameStreamError';
}

/** Splits a byte stream, fed in chunks of any size, into frames. */
export class FrameStreamDecoder {
  private buffer = new Uint8Array(0);

  /** The frames completed by `chunk`; throws FrameStreamError for a length no frame has. */
  push(chunk: Uint8Array): Uint8Array[] {
    // A plain view (not a Buffer), so that the frames sliced from it are plain Uint8Arrays too.
    let bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.buffer.length > 0) {
      bytes = new Uint8Array(this.buffer.length + chunk.length);
      bytes.set(this.buffer);
      bytes.set(chunk, this.buffer.length);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const frames: Uint8Array[] = [];
    let offset = 0;
    while (bytes.length - offset >= frameLengthBytes) {
      const length = view.getUint32(offset);
      if (length > streamFrameBytesMax) throw new FrameStreamError(`a frame of ${length} bytes (at most ${streamFrameBytesMax})`);
      if (bytes.length - offset - frameLengthBytes < length) break;
      frames.push(bytes.slice(offset + frameLengthBytes, offset + frameLengthBytes + length));
      offset += frameLengthBytes + length;
    }
    this.buffer = bytes.slice(offset);
    return frames;
  }

  /** Bytes of a frame begun and not finished (a stream that ends here ended mid-frame). */
  get partialBytes(): number {
    return this.buffer.length;
  }
}
