// CRC-32C (Castagnoli), the checksum of every Kafka record batch, computed eight bytes at a time
// ("slicing-by-8": eight 256-entry tables, one lookup per byte, two 32-bit reads per eight bytes,
// and no dependency chain between the eight lookups): ~2.4x kafkajs' speed here. kafkajs' own loop goes one byte at a time; on the relay's worker that was ~10 % of
// its CPU per published event. Same results: lib/test/crc32c.test.ts checks it against kafkajs'.

const polynomialReflected = 0x82f63b78
const tables = (() => {
  const t = new Int32Array(8 * 256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? (c >>> 1) ^ polynomialReflected : c >>> 1
    t[n] = c
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8)
      t[k * 256 + n] = c
    }
  }
  return t
})()

/** The CRC-32C of `bytes`, as an unsigned 32-bit integer. */
export function crc32c (bytes: Uint8Array): number {
  const t = tables
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let crc = -1
  let i = 0
  const end8 = bytes.length - (bytes.length & 7)
  while (i < end8) {
    const a = crc ^ view.getInt32(i, true)
    const b = view.getInt32(i + 4, true)
    crc = t[1792 + (a & 0xff)]! ^ t[1536 + ((a >>> 8) & 0xff)]! ^ t[1280 + ((a >>> 16) & 0xff)]! ^ t[1024 + (a >>> 24)]! ^
      t[768 + (b & 0xff)]! ^ t[512 + ((b >>> 8) & 0xff)]! ^ t[256 + ((b >>> 16) & 0xff)]! ^ t[b >>> 24]!
    i += 8
  }
  while (i < bytes.length) crc = t[(crc ^ bytes[i++]!) & 0xff]! ^ (crc >>> 8)
  return (crc ^ -1) >>> 0
}
