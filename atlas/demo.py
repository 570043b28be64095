"""Deterministic, LAION-shaped demo shards, so a fresh clone builds a meaningful site offline.

The rows are synthetic: captions are assembled from topic templates, hosts follow the mix seen in
LAION (Pinterest, Shopify, stock-photo and print-on-demand sites first, then a long tail), and the
score columns follow the published marginals of laion2B-en (see ``shared/LAION_FACTS.md``):

- ``similarity``: every row passed the 0.28 CLIP filter (mean ~0.32);
- ``punsafe``: 2.9 % at or over 0.5; ``pwatermark``: 6.1 % at or over 0.8;
- ``aesthetic``: the V1 predictor's buckets (0-1: 0.12 % ... 5-6: 27.72 % ... 9-10: ~0 %);
- sizes: both sides >= 256 px for ~57 %, >= 512 for ~21 %, >= 1024 for ~3 %;
- captions: median ~48 characters, mean ~67, a few with raw HTML as in real alt text.

URLs point at the real hosts' shapes but are made up, so their images do not load: the map shows
its "image unavailable" state for them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

GENERATOR_VERSION = "1"
DEFAULT_ROWS = 120_000
DEFAULT_SHARDS = 4

# host, weight, topics it mostly serves
HOSTS: list[tuple[str, float, tuple[str, ...]]] = [
    ("i.pinimg.com", 9.0, ("fashion", "art", "home", "food", "wedding")),
    ("cdn.shopify.com", 8.0, ("fashion", "jewelry", "home", "product")),
    ("thumbs.dreamstime.com", 3.0, ("stock", "travel", "food")),
    ("rlv.zcache.com", 2.2, ("product", "wedding")),
    ("ecx.images-amazon.com", 1.8, ("product", "book")),
    ("images.fineartamerica.com", 1.6, ("art", "travel")),
    ("previews.123rf.com", 1.5, ("stock",)),
    ("photos.smugmug.com", 1.2, ("travel", "sport")),
    ("i.etsystatic.com", 1.4, ("jewelry", "art", "wedding")),
    ("media.gettyimages.com", 1.0, ("stock", "sport")),
    ("i.ebayimg.com", 1.3, ("product", "car")),
    ("images-na.ssl-images-amazon.com", 1.2, ("book", "product")),
    ("static.wixstatic.com", 0.9, ("home", "wedding")),
    ("s3.amazonaws.com", 0.8, ("product", "stock")),
    ("upload.wikimedia.org", 0.7, ("travel", "art", "car")),
    ("i.ytimg.com", 0.6, ("sport", "car")),
    ("farm4.staticflickr.com", 0.7, ("travel", "pet")),
    ("cdn.cnn.com", 0.3, ("sport", "travel")),
    ("images.squarespace-cdn.com", 0.8, ("wedding", "food", "home")),
    ("live.staticflickr.com", 0.6, ("pet", "travel")),
]
TAIL_WEIGHT = 18.0  # share of rows on the long tail of small sites
TAIL_SITES = 6000

TOPICS: dict[str, dict[str, list[str]]] = {
    "fashion": {
        "templates": [
            "{adj} {colour} {garment} for women",
            "{brand} {colour} {garment} - size {size}",
            "women's {adj} {garment} with {detail}",
            "{colour} {garment} outfit idea",
            "summer {garment} {colour} {detail}",
        ],
        "adj": ["elegant", "casual", "vintage", "boho", "floral", "oversized", "slim fit", "cute"],
        "garment": ["dress", "maxi dress", "blouse", "cardigan", "denim jacket", "skirt", "jumpsuit", "sweater"],
        "detail": ["lace trim", "puff sleeves", "v-neck", "pockets", "ruffles", "belt"],
    },
    "jewelry": {
        "templates": [
            "{metal} {stone} {piece}",
            "handmade {metal} {piece} with {stone}",
            "{adj} {stone} engagement ring in {metal}",
            "{piece} - {metal} - {stone} - gift for her",
        ],
        "metal": ["sterling silver", "14k gold", "rose gold", "platinum", "brass"],
        "stone": ["diamond", "sapphire", "opal", "emerald", "pearl", "moonstone"],
        "piece": ["necklace", "ring", "earrings", "bracelet", "pendant"],
        "adj": ["vintage", "minimalist", "art deco", "dainty"],
    },
    "home": {
        "templates": [
            "{adj} {room} with {item}",
            "{room} decor ideas {year}",
            "{colour} {item} in a {adj} {room}",
            "how to style a {item} in your {room}",
        ],
        "room": ["living room", "kitchen", "bedroom", "bathroom", "patio", "home office"],
        "item": ["sofa", "pendant light", "rug", "bookshelf", "plants", "wall art", "armchair"],
        "adj": ["scandinavian", "modern farmhouse", "cozy", "minimalist", "industrial", "mid-century"],
    },
    "food": {
        "templates": [
            "{adj} {dish} recipe",
            "easy {dish} with {ingredient}",
            "homemade {dish} on a wooden table",
            "{dish} with {ingredient} and {ingredient2}",
        ],
        "dish": ["chocolate cake", "pasta salad", "banana bread", "chicken curry", "pancakes", "sourdough bread", "tacos"],
        "ingredient": ["fresh basil", "lemon", "garlic", "avocado", "strawberries", "cheddar"],
        "ingredient2": ["honey", "spinach", "tomatoes", "walnuts", "feta"],
        "adj": ["healthy", "vegan", "the best", "quick", "gluten-free"],
    },
    "stock": {
        "templates": [
            "{person} {action} in {place} stock photo",
            "portrait of {person} {action}",
            "{person} {action} - royalty free image",
            "{concept} concept, {person} {action}",
        ],
        "person": ["businessman", "young woman", "happy family", "doctor", "senior couple", "team of colleagues", "student"],
        "action": ["working on laptop", "smiling", "shaking hands", "talking on phone", "holding a cup of coffee"],
        "place": ["modern office", "park", "city street", "kitchen", "classroom"],
        "concept": ["business", "teamwork", "success", "healthcare", "education"],
    },
    "travel": {
        "templates": [
            "{place} at {time}",
            "view of {place}, {country}",
            "{adj} {landscape} in {country}",
            "sunset over {landscape} near {place}",
        ],
        "place": ["the old town", "the harbour", "the cathedral", "the mountain village", "the lighthouse"],
        "country": ["Italy", "Norway", "Japan", "Peru", "Iceland", "Morocco", "Scotland"],
        "landscape": ["lake", "mountains", "beach", "waterfall", "desert", "forest"],
        "time": ["sunrise", "sunset", "night", "dawn"],
        "adj": ["beautiful", "misty", "snowy", "tropical"],
    },
    "art": {
        "templates": [
            "{subject}, {medium} by {artist}",
            "{adj} {subject} {medium}",
            "{subject} art print by {artist}",
            "{medium} of {subject}",
            "{adj} {subject}, trending on artstation",
        ],
        "subject": ["portrait of a woman", "still life with flowers", "landscape with river", "city at night", "abstract composition", "fantasy castle", "cat"],
        "medium": ["oil painting", "watercolor", "digital art", "charcoal drawing", "poster", "canvas print"],
        "adj": ["surreal", "impressionist", "colorful", "dark", "minimalist", "detailed"],
        "artist": [
            "Claude Monet", "Vincent van Gogh", "Alphonse Mucha", "Greg Rutkowski", "Katsushika Hokusai",
            "Gustav Klimt", "Frida Kahlo", "Salvador Dali", "Rembrandt", "Johannes Vermeer",
            "Edward Hopper", "Wassily Kandinsky", "Thomas Kinkade", "Banksy", "Andy Warhol",
        ],
    },
    "product": {
        "templates": [
            "{item} {variant}",
            "personalized {item} - {variant}",
            "{brand} {item} {variant} new",
            "funny {item} gift",
        ],
        "item": ["coffee mug", "t-shirt", "phone case", "tote bag", "throw pillow", "sticker", "water bottle"],
        "variant": ["black", "white", "11 oz", "large", "iPhone 12", "pack of 3", "custom name"],
    },
    "book": {
        "templates": [
            "{title} (paperback)",
            "{title}: a novel",
            "{title} hardcover – {year}",
        ],
        "title": ["The Silent Garden", "A History of Light", "Cooking for Two", "Learning Python", "The Last Harbour", "Birds of North America"],
    },
    "car": {
        "templates": [
            "{year} {make} {model} {colour}",
            "used {make} {model} for sale",
            "{colour} {make} {model} on the road",
        ],
        "make": ["Ford", "Toyota", "BMW", "Volkswagen", "Porsche", "Honda"],
        "model": ["Mustang", "Corolla", "3 Series", "Golf", "911", "Civic"],
    },
    "pet": {
        "templates": [
            "{adj} {animal} {action}",
            "{animal} puppy {action} in the grass",
            "portrait of a {adj} {animal}",
        ],
        "animal": ["golden retriever", "tabby cat", "border collie", "french bulldog", "siamese cat", "rabbit"],
        "adj": ["cute", "sleepy", "happy", "fluffy"],
        "action": ["playing", "sleeping on a sofa", "running", "looking at the camera"],
    },
    "sport": {
        "templates": [
            "{team} {player} during the {event}",
            "{sport} player in action at the {event}",
            "fans cheering at the {event}",
        ],
        "team": ["home team", "visiting team", "national team"],
        "player": ["striker", "goalkeeper", "quarterback", "pitcher"],
        "sport": ["football", "tennis", "basketball", "golf"],
        "event": ["championship final", "season opener", "open", "cup match"],
    },
    "wedding": {
        "templates": [
            "{adj} wedding {item}",
            "bride and groom {action} at the {venue}",
            "{colour} wedding {item} ideas",
        ],
        "item": ["invitation", "cake", "bouquet", "dress", "table decor"],
        "adj": ["rustic", "elegant", "boho", "vintage", "romantic"],
        "action": ["dancing", "kissing", "walking", "laughing"],
        "venue": ["beach", "barn", "garden", "chapel"],
    },
}
SHARED = {
    "colour": ["black", "white", "red", "navy blue", "sage green", "pink", "beige", "mustard yellow"],
    "brand": ["Nordic", "Aurora", "Maple & Co", "Urban", "Lumen"],
    "size": ["S", "M", "L", "XL", "10", "12"],
    "year": ["2015", "2018", "2019", "2020", "2021"],
}
TAILS = [
    "", "", "", "", "", " - Stock Photo", " | Free Shipping", " – Buy Online", " (2 pack)",
    ", high resolution", " #inspiration #ideas", " | Etsy", " on Sale Now", " - Image 3 of 12",
    ". Perfect for gifts, birthdays and every day use, made to order in our studio",
]
HTML_NOISE = [
    "<b>{c}</b>", "{c}<br />", "{c} &amp; more", "<span class=\"title\">{c}</span>", "{c} <i>new</i>",
]
AESTHETIC_BUCKETS = [0.12, 1.18, 6.81, 18.88, 30.24, 27.72, 12.50, 2.37, 0.16, 0.003]


def _slug(text: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else " " for ch in text.lower()).split())[:60]


def _tail_host(i: int) -> str:
    words = ["studio", "shop", "photo", "art", "home", "blog", "news", "design", "craft", "garden", "travel", "kitchen"]
    tlds = [".com", ".com", ".com", ".net", ".org", ".co.uk", ".de", ".fr", ".com.au", ".blogspot.com"]
    a, b = words[i % len(words)], words[(i * 7 + 3) % len(words)]
    prefix = ["", "www.", "img.", "cdn.", "images."][(i * 3) % 5]
    return f"{prefix}{a}{b}{i}{tlds[(i * 11) % len(tlds)]}"


def _caption(rng: np.random.Generator, topic: str) -> str:
    spec = TOPICS[topic]
    template = spec["templates"][rng.integers(len(spec["templates"]))]
    values = {}
    for key in {part.split("}")[0] for part in template.split("{")[1:]}:
        options = spec.get(key) or SHARED[key]
        values[key] = options[rng.integers(len(options))]
    text = template.format(**values)
    if rng.random() < 0.55:
        text = text[0].upper() + text[1:]
    text += TAILS[rng.integers(len(TAILS))]
    if rng.random() < 0.13:  # long, SEO-style alt text: pushes the mean above the median
        text += ". " + _caption(rng, topic) + ". " + _caption(rng, topic)
    if rng.random() < 0.012:
        text = HTML_NOISE[rng.integers(len(HTML_NOISE))].format(c=text)
    return text


def demo_table(rows: int, seed: int, offset: int = 0):
    """One shard's worth of rows as a pyarrow Table."""
    import pyarrow as pa

    rng = np.random.default_rng([seed, offset])
    weights = np.array([w for _, w, _ in HOSTS] + [TAIL_WEIGHT], dtype=float)
    weights /= weights.sum()
    topics = list(TOPICS)
    host_pick = rng.choice(len(weights), size=rows, p=weights)
    # A skewed long tail: a few small sites have hundreds of images, most have a handful.
    tail_pick = np.minimum((TAIL_SITES * rng.random(rows) ** 2).astype(int), TAIL_SITES - 1)
    urls, captions = [], []
    for i in range(rows):
        h = host_pick[i]
        if h < len(HOSTS):
            host, _, host_topics = HOSTS[h]
            topic = host_topics[rng.integers(len(host_topics))]
        else:
            t = int(tail_pick[i])
            host, topic = _tail_host(t), topics[(t * 5) % len(topics)]
        caption = _caption(rng, topic)
        scheme = "https" if rng.random() < 0.85 else "http"
        urls.append(f"{scheme}://{host}/images/{offset + i:07d}/{_slug(caption) or 'image'}.jpg")
        captions.append(caption)
    similarity = 0.28 + rng.gamma(2.2, 0.018, size=rows)
    punsafe = np.where(rng.random(rows) < 0.029, rng.uniform(0.5, 0.999, rows), rng.beta(0.6, 14.0, rows) * 0.5)
    pwatermark = np.where(rng.random(rows) < 0.061, rng.uniform(0.8, 1.0, rows), rng.beta(0.8, 6.0, rows) * 0.8)
    buckets = np.array(AESTHETIC_BUCKETS) / sum(AESTHETIC_BUCKETS)
    aesthetic = rng.choice(10, size=rows, p=buckets) + rng.random(rows)
    short_side = np.exp(rng.normal(5.669, 0.706, rows))
    ratio = np.exp(rng.normal(0.15, 0.3, rows))
    landscape = rng.random(rows) < 0.6
    width = np.where(landscape, short_side * ratio, short_side)
    height = np.where(landscape, short_side, short_side * ratio)
    width = np.clip(np.round(width), 16, 12000)
    height = np.clip(np.round(height), 16, 12000)
    # A few missing scores, as real joined metadata has.
    pwatermark[rng.random(rows) < 0.002] = np.nan
    aesthetic[rng.random(rows) < 0.001] = np.nan
    hashes = [
        int.from_bytes(hashlib.blake2b((u + c).encode(), digest_size=8).digest(), "little", signed=True)
        for u, c in zip(urls, captions)
    ]
    return pa.table(
        {
            "URL": pa.array(urls, pa.string()),
            "TEXT": pa.array(captions, pa.string()),
            "WIDTH": pa.array(width, pa.float64()),
            "HEIGHT": pa.array(height, pa.float64()),
            "similarity": pa.array(np.round(similarity, 6), pa.float64()),
            "hash": pa.array(hashes, pa.int64()),
            "punsafe": pa.array(punsafe.astype(np.float32), pa.float32()),
            "pwatermark": pa.array(pwatermark.astype(np.float32), pa.float32()),
            "aesthetic": pa.array(aesthetic.astype(np.float32), pa.float32()),
        }
    )


def write_demo_shards(folder: Path, rows: int = DEFAULT_ROWS, shards: int = DEFAULT_SHARDS, seed: int = 0) -> list[Path]:
    """Write ``shards`` parquet files named like laion2B-en's parts; same arguments, same bytes."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-rows // shards)
    paths = []
    for k in range(shards):
        n = min(per, rows - k * per)
        table = demo_table(n, seed, offset=k * per)
        path = folder / f"part-{k:05d}-demo.snappy.parquet"
        pq.write_table(table, path, compression="snappy", row_group_size=10_000)
        paths.append(path)
    return paths
