"""Writes datasets/{animals,cutouts,backgrounds}/ from extracted Debian packages.

    python prepare.py --debian DIR --out datasets

DIR is where the packages were extracted (`dpkg-deb -x`, see fetch.sh). GCompris keeps its
photos inside Qt resource bundles (`.rcc`); `read_rcc` unpacks those. Photos are resized to at
most MAX_SIDE pixels and re-encoded as JPEG, cut-outs keep their size and alpha channel. The
lists below are the whole selection: which file, under which name, and why it is in (or out)
is in the README of each output directory.
"""

import argparse
import io
import os
import struct
import sys
import zlib

from PIL import Image

MAX_SIDE = 800
JPEG_QUALITY = 90

GCOMPRIS = "usr/share/gcompris-qt/rcc"
FARM = ("explore_farm_animals.rcc", "gcompris/src/activities/explore_farm_animals/resource/animals")
WORLD = ("explore_world_animals.rcc", "gcompris/src/activities/explore_world_animals/resource/animals")
ERASE = ("erase.rcc", "gcompris/src/activities/erase/resource")

# (output name, bundle, file inside it). Only photos whose animals are COCO classes:
# a bison, panda or camel would be an unlabelled object the detector may call cow or bear.
PHOTOS = [
    ("farm-cat.jpg", FARM, "cat.webp"),
    ("farm-chicken.jpg", FARM, "chicken.webp"),
    ("farm-cow.jpg", FARM, "cow.webp"),
    ("farm-dog.jpg", FARM, "dog.webp"),
    ("farm-duck.jpg", FARM, "duck.webp"),
    ("farm-horse.jpg", FARM, "horse.webp"),
    ("farm-owl.jpg", FARM, "owl.webp"),
    ("farm-sheep.jpg", FARM, "sheep.webp"),
    ("world-giraffe.jpg", WORLD, "giraffe.webp"),
    ("world-polar-bear.jpg", WORLD, "polar_bear.webp"),
    ("world-macaw.jpg", WORLD, "scarlet_macaw.webp"),
    ("erase-calf.jpg", ERASE, "calf.webp"),
    ("erase-giraffe.jpg", ERASE, "giraffe.webp"),
    ("erase-gosling.jpg", ERASE, "gosling.webp"),
    ("erase-harrier.jpg", ERASE, "northern_harrier.webp"),
    ("erase-heron.jpg", ERASE, "heron.webp"),
    ("erase-horse.jpg", ERASE, "horse.webp"),
    ("erase-kingfisher.jpg", ERASE, "kingfisher.webp"),
    ("erase-kitten.jpg", ERASE, "kitten.webp"),
    ("erase-penguin.jpg", ERASE, "penguin.webp"),
    ("erase-spoonbills.jpg", ERASE, "spoonbills.webp"),
    ("erase-swans.jpg", ERASE, "swans.webp"),
    ("erase-toucan.jpg", ERASE, "toucan.webp"),
]
# Plain files: (output name, path in the extracted packages, crop after resizing or None).
# The flock photo is cropped below the far flock (~100 sheep of 8x5 px, too small to box one by
# one and wrong to leave unboxed), keeping the nine near sheep.
PLAIN_PHOTOS = [
    ("tuxpaint-sheep.jpg", "usr/share/tuxpaint/templates/sheep.jpg", (0, 244, 800, 467)),
]
DARKNET = ["dog.jpg", "eagle.jpg", "giraffe.jpg", "horses.jpg", "person.jpg"]

STAMPS = "usr/share/tuxpaint/stamps/animals"
QABCS = "usr/share/qabcs/abcs/all/pics/animals"
# Photographic cut-outs only: qabcs's drawn sheep, horse, giraffe, cat, dog and zebra are left out.
TUX_BIRDS = [
    "adelaide-rosella", "albino_peahen", "blackbird", "chicken_profile", "crow", "crowned_crane",
    "cuckoo", "drake", "duck", "gander", "guineafowl", "helmeted_guineafowl", "hen",
    "heron_greatblue", "heron_greatblue_flying", "lark", "little-penguin", "magellanic_penguin",
    "magpie", "nandou", "ostrich", "owl", "peacock", "pelican", "penguin", "pigeon",
    "pink_flamingo", "quetzal", "rainbow-lorikeet", "rooster", "seagull", "silver-gull", "tucan",
    "turkey", "vulture",
]
CUTOUTS = (
    [(f"tux-{n}.png", f"{STAMPS}/birds/{n}.png") for n in TUX_BIRDS]
    + [
        ("tux-dog.png", f"{STAMPS}/mammals/dogs/dog.png"),
        ("tux-horse.png", f"{STAMPS}/mammals/equines/horse.png"),
        ("tux-zebra.png", f"{STAMPS}/mammals/equines/zebra.png"),
        ("tux-sheep.png", f"{STAMPS}/mammals/bovines/sheep.png"),
        ("tux-sheep_lamb.png", f"{STAMPS}/mammals/bovines/sheep_lamb.png"),
        ("tux-ram.png", f"{STAMPS}/mammals/bovines/ram.png"),
        ("tux-cow.png", f"{STAMPS}/mammals/bovines/cow.png"),
        ("tux-cow_white.png", f"{STAMPS}/mammals/bovines/cow_white.png"),
        ("tux-bull.png", f"{STAMPS}/mammals/bovines/bull.png"),
        ("tux-elephant.png", f"{STAMPS}/mammals/elephant.png"),
        ("tux-bear.png", f"{STAMPS}/mammals/bears/bear.png"),
        ("tux-european-bear.png", f"{STAMPS}/mammals/bears/european-bear.png"),
        ("tux-giraffe.png", f"{STAMPS}/mammals/giraffe.png"),
    ]
    + [(f"qabcs-{n}.png", f"{QABCS}/{n}.png") for n in ["bear", "bird", "cow", "duck", "elephant", "owl"]]
)
# Tux Paint's photo templates without animals (jellyfish and a spider's web left out).
BACKGROUNDS = [
    "burnt_bark", "cliff", "corn_maze", "lighthouse", "mossy_bark", "mossy_log", "mudstone",
    "ocean_splash", "ocean_waves", "redwoods_above", "rocks", "sun_behind_clouds",
    "sun_behind_leaves", "trees_above", "trees_at_dusk", "wool_mill_machine",
]


def read_rcc(path):
    """Every file in a Qt resource bundle, as {path: bytes}.

    Format (qtbase src/tools/rcc/rcc.cpp): a header `qres`, version, then offsets of the tree,
    the data and the names. Tree entries are 14 bytes (22 from version 2: a modification
    time follows): name offset, flags, then children count + first child for a directory, or
    country, language, data offset for a file. Names are a u16 length, a u32 hash and UTF-16BE.
    Data is a u32 size then bytes, zlib-compressed after a u32 length when flag 1 is set.
    """
    b = open(path, "rb").read()
    if b[:4] != b"qres":
        raise ValueError(f"{path}: not a Qt resource bundle")
    version, tree, data, names = struct.unpack(">IIII", b[4:20])
    entry = 22 if version >= 2 else 14
    files = {}

    def name(offset):
        (n,) = struct.unpack(">H", b[names + offset : names + offset + 2])
        return b[names + offset + 6 : names + offset + 6 + 2 * n].decode("utf-16-be")

    def walk(i, prefix):
        e = tree + i * entry
        name_offset, flags = struct.unpack(">IH", b[e : e + 6])
        here = f"{prefix}/{name(name_offset)}" if i else ""
        if flags & 2:
            count, first = struct.unpack(">II", b[e + 6 : e + 14])
            for child in range(first, first + count):
                walk(child, here)
        else:
            (offset,) = struct.unpack(">I", b[e + 10 : e + 14])
            (size,) = struct.unpack(">I", b[data + offset : data + offset + 4])
            blob = b[data + offset + 4 : data + offset + 4 + size]
            if flags & 4:
                raise ValueError(f"{path}: {here} is zstd-compressed, not supported")
            files[here.lstrip("/")] = zlib.decompress(blob[4:]) if flags & 1 else blob

    walk(0, "")
    return files


def save_photo(image, out, crop=None):
    image = image.convert("RGB")
    if max(image.size) > MAX_SIDE:
        scale = MAX_SIDE / max(image.size)
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
        )
    if crop:
        image = image.crop(crop)
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--debian", required=True, help="the extracted packages (dpkg-deb -x)")
    ap.add_argument("--out", required=True, help="the datasets/ directory")
    args = ap.parse_args()
    photos = os.path.join(args.out, "animals")
    cutouts = os.path.join(args.out, "cutouts")
    backgrounds = os.path.join(args.out, "backgrounds")
    for d in (photos, cutouts, backgrounds):
        os.makedirs(d, exist_ok=True)

    bundles = {}
    for name, (bundle, inside), file in PHOTOS:
        if bundle not in bundles:
            bundles[bundle] = read_rcc(os.path.join(args.debian, GCOMPRIS, bundle))
        save_photo(Image.open(io.BytesIO(bundles[bundle][f"{inside}/{file}"])), os.path.join(photos, name))
    for name, path, crop in PLAIN_PHOTOS:
        save_photo(Image.open(os.path.join(args.debian, path)), os.path.join(photos, name), crop)
    for name in DARKNET:
        # Copied byte for byte: these were in the dataset before, boxes drawn on the originals.
        with open(os.path.join(args.debian, "usr/share/darknet/data", name), "rb") as src:
            with open(os.path.join(photos, name), "wb") as dst:
                dst.write(src.read())
    for name, path in CUTOUTS:
        image = Image.open(os.path.join(args.debian, path)).convert("RGBA")
        image.save(os.path.join(cutouts, name), "PNG", optimize=True)
    for name in BACKGROUNDS:
        save_photo(
            Image.open(os.path.join(args.debian, f"usr/share/tuxpaint/templates/{name}.jpg")),
            os.path.join(backgrounds, f"{name}.jpg"),
        )
    print(
        f"wrote {len(PHOTOS) + len(PLAIN_PHOTOS) + len(DARKNET)} photos, {len(CUTOUTS)} cut-outs, "
        f"{len(BACKGROUNDS)} backgrounds under {args.out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
