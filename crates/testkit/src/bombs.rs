//! Decompression bombs, one or more per accepted image format: small files
//! that claim (or inflate to) far more memory than their size. Tests send
//! them through the decoder, the HTTP edge and `modelobs predict`, and check
//! each is refused before the memory is taken.

use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;

/// One bomb: a name for messages, its bytes, and the content type it claims.
pub struct Bomb {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

/// Every bomb, PNG metadata bombs inflating to `inflated` bytes each.
pub fn all(inflated: usize) -> Vec<Bomb> {
    vec![
        Bomb {
            name: "png iCCP chunk inflating far",
            bytes: png_with_chunk(b"iCCP", &compressed_chunk(b"icc", inflated)),
            content_type: "image/png",
        },
        Bomb {
            name: "png zTXt chunk inflating far",
            bytes: png_with_chunk(b"zTXt", &compressed_chunk(b"Comment", inflated)),
            content_type: "image/png",
        },
        Bomb {
            name: "png header claiming 60000x60000",
            bytes: png_claiming(60_000, 60_000),
            content_type: "image/png",
        },
        Bomb {
            name: "jpeg frame header claiming 60000x60000",
            bytes: jpeg_claiming(60_000, 60_000),
            content_type: "image/jpeg",
        },
        Bomb {
            name: "webp lossless header claiming 16383x16383",
            bytes: webp_lossless_claiming(16_383, 16_383),
            content_type: "image/webp",
        },
    ]
}

/// zlib of `len` zero bytes (about a thousandth of `len`).
pub fn zlib_zeros(len: usize) -> Vec<u8> {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
    let block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        z.write_all(&block[..n]).expect("writing to a Vec");
        left -= n;
    }
    z.finish().expect("writing to a Vec")
}

/// `keyword\0`, compression method 0, then zlib of `inflated` zeros: the
/// body of an iCCP or zTXt chunk.
fn compressed_chunk(keyword: &[u8], inflated: usize) -> Vec<u8> {
    let mut data = keyword.to_vec();
    data.extend_from_slice(&[0, 0]);
    data.extend(zlib_zeros(inflated));
    data
}

/// A PNG chunk: length, type, data, CRC-32 over type and data.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(data.len())
        .expect("chunk under 4 GiB")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    out
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

fn ihdr(width: u32, height: u32) -> Vec<u8> {
    let mut data = width.to_be_bytes().to_vec();
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    png_chunk(b"IHDR", &data)
}

/// A valid 1x1 RGB PNG with one extra chunk before its pixels.
pub fn png_with_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut png = PNG_SIGNATURE.to_vec();
    png.extend(ihdr(1, 1));
    png.extend(png_chunk(kind, data));
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(&[0, 200, 100, 50]).expect("writing to a Vec"); // filter 0, one pixel
    png.extend(png_chunk(b"IDAT", &z.finish().expect("writing to a Vec")));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

/// A PNG whose header claims `width` x `height`, with one row of pixels.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = PNG_SIGNATURE.to_vec();
    png.extend(ihdr(width, height));
    png.extend(png_chunk(b"IDAT", &zlib_zeros(3 * width as usize + 1)));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

/// A baseline JPEG header (quantisation and Huffman tables, a frame header
/// claiming `width` x `height`, a scan) with a few bytes of scan data: the
/// header is what a decoder sizes its buffers from.
pub fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8]; // SOI
    // DQT: table 0, all ones
    j.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    j.extend(std::iter::repeat_n(1u8, 64));
    // SOF0: 8-bit, height, width, one component (id 1, 1x1, table 0)
    j.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08]);
    j.extend_from_slice(&height.to_be_bytes());
    j.extend_from_slice(&width.to_be_bytes());
    j.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
    // DHT: DC table 0 and AC table 0, each one code of length 1 for symbol 0
    for class in [0x00u8, 0x10] {
        j.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class, 1]);
        j.extend_from_slice(&[0; 15]);
        j.push(0);
    }
    // SOS: one component, tables 0/0, full spectrum
    j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
    j.extend_from_slice(&[0x00; 64]);
    j.extend_from_slice(&[0xFF, 0xD9]); // EOI
    j
}

/// A lossless WebP whose VP8L header claims `width` x `height` (each at
/// most 16383: image-webp reads 16384 as 0), followed by a few bytes that are not a valid bitstream.
pub fn webp_lossless_claiming(width: u32, height: u32) -> Vec<u8> {
    assert!((1..=16_383).contains(&width) && (1..=16_383).contains(&height));
    let bits: u32 = (width - 1) | ((height - 1) << 14); // alpha 0, version 0
    let mut vp8l = vec![0x2F];
    vp8l.extend_from_slice(&bits.to_le_bytes());
    vp8l.extend_from_slice(&[0; 16]);
    let mut riff = b"WEBP".to_vec();
    riff.extend_from_slice(b"VP8L");
    riff.extend_from_slice(&(vp8l.len() as u32).to_le_bytes());
    riff.extend(vp8l);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(riff.len() as u32).to_le_bytes());
    out.extend(riff);
    out
}
